"""The one way a page reads the ledger: read-only, enforced by SQLite (no widgets here, so the
home page, which is plain HTML, reads it without loading ipywidgets)."""

from __future__ import annotations

import contextlib
import contextvars
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from quantstrip.paths import workspace

# SQLite authorizer codes a page's reads need; anything else (a write, ATTACH, a pragma that
# sets something, VACUUM INTO's attach) is denied by the engine.
_READ_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
_READ_PRAGMAS = frozenset({"busy_timeout", "foreign_keys", "table_info", "user_version"})
_open_reader: contextvars.ContextVar[sqlite3.Connection | None] = contextvars.ContextVar(
    "page_reader", default=None
)


def _reads_only(action: int, arg1: str | None, arg2: str | None, *_: object) -> int:
    if action in _READ_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and arg1 in _READ_PRAGMAS and arg2 is None:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


@contextlib.contextmanager
def read_ledger(path: Path | None = None) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection to the ledger for one refresh (None while there is no database).

    Pages never write and never migrate (migrations run at `init`, `up` and daemon start): the
    file is opened `mode=ro` and an authorizer denies everything but reads. Nested uses in one
    thread share the outer connection, so a whole refresh costs one open.
    """
    outer = _open_reader.get()
    if outer is not None and path is None:
        yield outer
        return
    from quantstrip.db.connection import connect

    target = path or workspace().database
    if not target.exists():
        yield None
        return
    conn = connect(target, read_only=True)
    conn.set_authorizer(_reads_only)
    token = _open_reader.set(conn) if path is None else None
    try:
        yield conn
    finally:
        if token is not None:
            _open_reader.reset(token)
        conn.close()
