"""Small files that several processes share: atomic replacement and an exclusive lock.

The CLI, the dashboard's kernels, the daemon and the clients are separate processes that may
update the same settings file, secret vault or outbox at the same moment. Readers must see the
old file or the new one, never half of one; writers of a read-modify-write must take turns (a
thread lock does not see the other processes, and one writer would lose the other's change).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, private: bool = False) -> None:
    """Replace `path` with `data` in one step; `private` files are created 0600 (owner only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o666)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    if private:
        os.chmod(temporary, 0o600)  # in case the temporary file existed with other permissions
    os.replace(temporary, path)


@contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `lock_path` (created 0600) for the duration of the block."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
