"""An exclusive lock between processes, for the read-modify-write of small shared files.

The CLI, the dashboard's kernels, the daemon and the clients are separate processes that may
update the same settings file or secret vault at the same moment; a thread lock does not see
the others, and without a lock one writer silently loses the other's change.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
