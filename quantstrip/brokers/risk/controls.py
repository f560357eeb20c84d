"""The operator's controls, kept in the workspace database so that every process sees them.

`risk_controls` holds one state per scope (a client name, or '*' for everything); the stricter
of a client's own state and the global one applies. Actions that need a client's broker
connection (flatten, cancel orders, refresh marks) are queued in `risk_actions`; each running
client's guard carries them out and reports in `risk_action_results`. `risk_guards` lists the
processes whose brokers are guarded, so the CLI knows whom to wait for.

Reads open the database read-only and never create it: a process outside any workspace (a unit
test of an adapter) simply sees no controls.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from quantstrip import clock
from quantstrip.brokers.risk.rules import ScopeState, TradingState
from quantstrip.db.connection import connect, transaction
from quantstrip.db.units import now_text, utc_text
from quantstrip.errors import ValidationError
from quantstrip.paths import workspace

ALL = "*"
ACTIONS = ("flatten", "cancel_orders", "refresh_marks")
# A guard that has not been seen for this long is taken to be gone.
PRESENCE_S = 30.0


def database_path() -> Path:
    return workspace().database


_readers = threading.local()


@contextmanager
def _reader(path: Path | None = None) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection of this thread to the workspace database, kept open: the guard
    reads the operator's state before every order, which must cost microseconds."""
    path = path or database_path()
    if not path.exists():
        yield None
        return
    cached: dict[Path, tuple[tuple[int, int], sqlite3.Connection]] = (
        getattr(_readers, "by_path", None) or {}
    )
    _readers.by_path = cached
    entry = cached.get(path)
    # Reopened after a fork (a connection is never shared across processes) or when the file
    # was replaced (a rebuilt workspace).
    identity = (os.getpid(), path.stat().st_ino)
    if entry is None or entry[0] != identity:
        if entry is not None and entry[0][0] == os.getpid():
            entry[1].close()
        entry = (identity, connect(path, read_only=True))
        cached[path] = entry
    yield entry[1]


@contextmanager
def _writer(path: Path | None = None) -> Iterator[sqlite3.Connection]:
    from quantstrip.db.migrate import migrate

    path = path or database_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    try:
        migrate(conn)
        yield conn
    finally:
        conn.close()


def _missing_table(exc: sqlite3.OperationalError) -> bool:
    return "no such table" in str(exc)


def states(client: str | None, path: Path | None = None) -> tuple[ScopeState, ...]:
    """The global state and the client's own, where either is not active."""
    scopes = [ALL] if client is None else [ALL, client]
    with _reader(path) as conn:
        if conn is None:
            return ()
        try:
            rows = conn.execute(
                f"SELECT scope, state, reason FROM risk_controls WHERE scope IN "
                f"({', '.join('?' * len(scopes))}) AND state <> 'active' ORDER BY scope = '*' DESC",
                scopes,
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if _missing_table(exc):  # a database not yet migrated has no controls
                return ()
            raise
    return tuple(ScopeState(r[0], TradingState(r[1]), r[2]) for r in rows)


@dataclass(frozen=True)
class Control:
    scope: str
    state: TradingState
    reason: str
    set_by: str
    updated_at: str


def all_controls(path: Path | None = None) -> list[Control]:
    with _reader(path) as conn:
        if conn is None:
            return []
        try:
            rows = conn.execute(
                "SELECT scope, state, reason, set_by, updated_at FROM risk_controls "
                "ORDER BY scope = '*' DESC, scope"
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if _missing_table(exc):
                return []
            raise
    return [Control(r[0], TradingState(r[1]), r[2], r[3], r[4]) for r in rows]


def _check_scope(scope: str) -> str:
    import re

    from quantstrip.daemon.registry import NAME_PATTERN

    if scope != ALL and not re.match(NAME_PATTERN, scope):
        raise ValidationError("client", f"not a client name: {scope!r}")
    return scope


def set_state(
    scope: str,
    state: TradingState,
    *,
    reason: str = "",
    set_by: str = "",
    path: Path | None = None,
) -> Control:
    """Record the state for a scope; every guard sees it on its next order."""
    _check_scope(scope)
    stamp = now_text()
    with _writer(path) as conn, transaction(conn):
        conn.execute(
            "INSERT INTO risk_controls (scope, state, reason, set_by, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (scope) DO UPDATE SET state = excluded.state, "
            "reason = excluded.reason, set_by = excluded.set_by, updated_at = excluded.updated_at",
            (scope, state.value, reason, set_by, stamp),
        )
        label = "all" if scope == ALL else scope
        conn.execute(
            "INSERT INTO client_events (client_name, event_type, message, created_at) "
            "VALUES (?, ?, ?, ?)",
            (
                label,
                f"risk_{state.value}",
                f"{state.value} by {set_by or 'operator'}" + (f": {reason}" if reason else ""),
                stamp,
            ),
        )
    return Control(scope, state, reason, set_by, stamp)


def request_action(
    scope: str,
    action: str,
    *,
    reason: str = "",
    requested_by: str = "",
    path: Path | None = None,
) -> int:
    _check_scope(scope)
    if action not in ACTIONS:
        raise ValidationError("action", f"must be one of {ACTIONS}, got {action!r}")
    with _writer(path) as conn, transaction(conn):
        cursor = conn.execute(
            "INSERT INTO risk_actions (scope, action, reason, requested_by, requested_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (scope, action, reason, requested_by, now_text()),
        )
        return int(cursor.lastrowid or 0)


@dataclass(frozen=True)
class Action:
    id: int
    scope: str
    action: str
    reason: str


def actions_after(last_id: int, path: Path | None = None) -> list[Action]:
    with _reader(path) as conn:
        if conn is None:
            return []
        try:
            rows = conn.execute(
                "SELECT id, scope, action, reason FROM risk_actions WHERE id > ? ORDER BY id",
                (last_id,),
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if _missing_table(exc):
                return []
            raise
    return [Action(*r) for r in rows]


def last_action_id(path: Path | None = None) -> int:
    with _reader(path) as conn:
        if conn is None:
            return 0
        try:
            return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM risk_actions").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if _missing_table(exc):
                return 0
            raise


def report_result(
    action_id: int, client: str, status: str, detail: str, path: Path | None = None
) -> None:
    with _writer(path) as conn, transaction(conn):
        conn.execute(
            "INSERT INTO risk_action_results (action_id, client_name, pid, status, detail, "
            "finished_at) VALUES (?, ?, ?, ?, ?, ?)",
            (action_id, client, os.getpid(), status, detail, now_text()),
        )


@dataclass(frozen=True)
class Result:
    client: str
    pid: int | None
    status: str
    detail: str


def results(action_id: int, path: Path | None = None) -> list[Result]:
    with _reader(path) as conn:
        if conn is None:
            return []
        rows = conn.execute(
            "SELECT client_name, pid, status, detail FROM risk_action_results "
            "WHERE action_id = ? ORDER BY id",
            (action_id,),
        ).fetchall()
    return [Result(*r) for r in rows]


@dataclass(frozen=True)
class Guarded:
    pid: int
    client: str
    mode: str
    brokers: str
    seen_at: str


def seen(client: str, mode: str, brokers: str, path: Path | None = None) -> None:
    """This process's guards are alive (called by the watcher every few seconds)."""
    stamp = now_text()
    with _writer(path) as conn, transaction(conn):
        conn.execute(
            "INSERT INTO risk_guards (pid, client_name, mode, brokers, started_at, seen_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (pid) DO UPDATE SET "
            "client_name = excluded.client_name, mode = excluded.mode, "
            "brokers = excluded.brokers, seen_at = excluded.seen_at",
            (os.getpid(), client, mode, brokers, stamp, stamp),
        )


def gone(path: Path | None = None) -> None:
    with _writer(path) as conn, transaction(conn):
        conn.execute("DELETE FROM risk_guards WHERE pid = ?", (os.getpid(),))


def forget(pid: int, path: Path | None = None) -> None:
    """Remove a process found dead from the guarded list (it can no longer say so itself)."""
    with _writer(path) as conn, transaction(conn):
        conn.execute("DELETE FROM risk_guards WHERE pid = ?", (pid,))


def live_guards(scope: str = ALL, path: Path | None = None) -> list[Guarded]:
    """Processes with guarded brokers seen recently, in the scope."""
    since = utc_text(clock.now() - timedelta(seconds=PRESENCE_S))
    with _reader(path) as conn:
        if conn is None:
            return []
        try:
            rows = conn.execute(
                "SELECT pid, client_name, mode, brokers, seen_at FROM risk_guards "
                "WHERE seen_at >= ? ORDER BY client_name, pid",
                (since,),
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if _missing_table(exc):
                return []
            raise
    guards = [Guarded(*r) for r in rows]
    return [g for g in guards if scope == ALL or g.client == scope]
