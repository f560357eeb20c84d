"""SQLite connections configured the one way every writer and reader must use.

WAL lets readers (reports, SQL editor, ODBC) run while clients write; a generous busy timeout
plus short `BEGIN IMMEDIATE` transactions means concurrent writers queue instead of failing
with "database is locked" (a deferred transaction that upgrades to a write can deadlock and
would fail immediately, whatever the timeout).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from quantstrip import clock

BUSY_TIMEOUT_MS = 60_000


def connect(path: str | Path, *, read_only: bool = False) -> sqlite3.Connection:
    """Open a connection in autocommit mode; writes go through `transaction()`."""
    if read_only:
        uri = f"file:{Path(path).resolve()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    else:
        conn = sqlite3.connect(
            str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
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
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
