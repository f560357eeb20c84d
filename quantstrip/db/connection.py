"""SQLite connections configured the one way every writer and reader must use.

WAL lets readers (reports, SQL editor, ODBC) run while clients write; a generous busy timeout
plus short `BEGIN IMMEDIATE` transactions means concurrent writers queue instead of failing
with "database is locked" (a deferred transaction that upgrades to a write can deadlock and
would fail immediately, whatever the timeout).

A connection belongs to one thread (`ThreadConnections`): `in_transaction` is per connection,
so a connection shared between a client's jobs and its broker's event thread would let one
thread join, commit or roll back the other's transaction.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from quantstrip import clock

BUSY_TIMEOUT_MS = 60_000


def connect(
    path: str | Path, *, read_only: bool = False, busy_timeout_s: float = BUSY_TIMEOUT_MS / 1000
) -> sqlite3.Connection:
    """Open a connection in autocommit mode; writes go through `transaction()`.

    A write connection is opened with `check_same_thread=False` only so that its owner
    (`ThreadConnections`) can close it from another thread once its thread is gone; it is
    never used by two threads.
    """
    if read_only:
        uri = f"file:{Path(path).resolve()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout_s, isolation_level=None)
    else:
        conn = sqlite3.connect(
            str(path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {round(busy_timeout_s * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    if not read_only:
        _enable_wal(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL, waiting out other processes doing the same on a brand-new file.

    Changing the journal mode needs an exclusive lock and SQLite answers "database is locked" at
    once instead of calling the busy handler: two clients creating the same database at the same
    moment (the first simulation run of two clients) would otherwise crash one of them.
    """
    deadline = clock.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or clock.monotonic() > deadline:
                raise
            time.sleep(0.02)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction taken up front (`BEGIN IMMEDIATE`); rolled back on any exception.

    Re-entrant: inside an open transaction it just runs, so composite operations (an execution
    plus its position event) commit together or not at all.
    """
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        # SQLite may have rolled back already (a full disk, an I/O error): a second ROLLBACK
        # would raise and hide the real error.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


_forks = 0  # how many times this process is a forked child (its parent's connections are not ours)


def _forked() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_forked)


class ThreadConnections:
    """One connection per thread to one database file, opened on the thread's first use.

    Connections of threads that have ended are closed when the next one opens; `close()` closes
    them all. A forked child never uses its parent's connections (it opens its own).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        read_only: bool = False,
        busy_timeout_s: float = BUSY_TIMEOUT_MS / 1000,
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: dict[threading.Thread, sqlite3.Connection] = {}
        self._generation = _forks
        self._closed = False

    def get(self) -> sqlite3.Connection:
        """The calling thread's connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._generation == _forks:
            return conn
        return self._connect()

    def _connect(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
            if self._generation != _forks:  # forked: the parent's connections are not ours
                self._open, self._generation = {}, _forks
                self._local = threading.local()
            for thread in [t for t in self._open if not t.is_alive()]:
                self._open.pop(thread).close()
            conn = connect(self.path, read_only=self.read_only, busy_timeout_s=self.busy_timeout_s)
            self._open[threading.current_thread()] = conn
            self._local.conn = conn
            return conn

    def close(self) -> None:
        """Close every thread's connection (their threads must be done with them)."""
        with self._lock:
            self._closed = True
            if self._generation == _forks:
                for conn in self._open.values():
                    conn.close()
            self._open = {}
            self._local = threading.local()
