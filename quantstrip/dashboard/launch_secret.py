"""Hand a server its token through an inherited pipe, never through its environment.

Jupyter and Voila copy their own environment into every kernel they start, so a token passed as
an environment variable sat in each kernel's `os.environ` (issue 17). A command-line argument
would show in `ps` to every local user, and a file would be the token in plain text on disk. The
launcher writes the token into a pipe, the server's config file reads it once at start-up and
closes the pipe: kernels started later inherit neither the token nor the descriptor.
"""

from __future__ import annotations

import os
import subprocess

ENV = "QUANTSTRIP_TOKEN_FD"
_read: dict[str, str | None] = {}


def pipe_for(secret: str) -> tuple[int, dict[str, str]]:
    """A readable descriptor holding `secret` and the environment entry naming it; pass the
    descriptor to the child with `pass_fds` and close it in the parent after the spawn."""
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, secret.encode())
    finally:
        os.close(write_end)
    return read_end, {ENV: str(read_end)}


def spawn_with_secret(
    command: list[str], secret: str, env: dict[str, str], **popen: object
) -> subprocess.Popen[bytes]:
    """Start `command` with `secret` readable once through the inherited pipe."""
    fd, entry = pipe_for(secret)
    try:
        return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
            command, env={**env, **entry}, pass_fds=(fd,), **popen
        )
    finally:
        os.close(fd)


def read_secret() -> str | None:
    """In the server process: the secret from the pipe named by $QUANTSTRIP_TOKEN_FD (read once;
    Jupyter may load its config files more than once), or None when not launched that way."""
    if ENV in _read:
        return _read[ENV]
    value = None
    fd = os.environ.pop(ENV, None)
    if fd is not None:
        descriptor = int(fd)
        chunks = []
        while chunk := os.read(descriptor, 4096):
            chunks.append(chunk)
        os.close(descriptor)
        value = b"".join(chunks).decode() or None
    _read[ENV] = value
    return value
