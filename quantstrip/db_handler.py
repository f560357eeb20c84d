"""Client code's door to the lifecycle database: `from quantstrip import db_handler`.

Module-level calls (`db_handler.record_execution(...)`, `db_handler.insert_strategy_event(...)`)
go to this process's own connection, opened lazily on the workspace database, so each client
process has its own connection and nothing is shared across processes. A client in simulation
mode points it elsewhere with `db_handler.use(path)`.

Strategies: the production record (the workspace database, where paper and live clients write)
refuses a strategy name nobody created, so a typo never becomes a new strategy; create them with
`db_handler.ensure_strategy(name)` (e.g. in `on_start`). Simulation databases create them on
first use. The setting `ledger.create_strategies` ("simulation", "always", "never") changes this.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from quantstrip import settings
from quantstrip.brokers.ib.ids import split_exec_id as split_ib_exec_id  # kept for clients
from quantstrip.db.handler import Database, ExecutionInput, ExecutionResult, Page
from quantstrip.paths import workspace

__all__ = [
    "Database",
    "ExecutionInput",
    "ExecutionResult",
    "Page",
    "close",
    "database",
    "reset",
    "split_ib_exec_id",
    "use",
]

_lock = threading.Lock()
_state: dict[str, Any] = {"db": None, "pid": None, "path": None}


def _default_path() -> Path:
    override = os.environ.get("QUANTSTRIP_DATABASE")
    return Path(override) if override else workspace().database


def creates_strategies(path: str | Path) -> bool:
    """Whether writes to `path` create unknown strategies (see the module's docstring)."""
    rule = settings.platform().ledger.create_strategies
    if rule != "simulation":
        return rule == "always"
    return Path(path).resolve() != workspace().database.resolve()


def use(path: str | Path | None) -> Database:
    """Point this process's handler at another database file (None: back to the default)."""
    with _lock:
        if _state["db"] is not None and _state["pid"] == os.getpid():
            _state["db"].close()
        _state.update(db=None, pid=None, path=Path(path) if path else None)
    return database()


def database() -> Database:
    """This process's connection; a forked child opens its own instead of sharing the parent's."""
    with _lock:
        if _state["db"] is None or _state["pid"] != os.getpid():
            path = _state["path"] or _default_path()
            _state["db"] = Database(path, create_strategies=creates_strategies(path))
            _state["pid"] = os.getpid()
        return _state["db"]


def close() -> None:
    """Close this process's connection; the next call reopens the same database."""
    with _lock:
        if _state["db"] is not None and _state["pid"] == os.getpid():
            _state["db"].close()
        _state.update(db=None, pid=None)


def reset() -> None:
    """Close and forget any `use(...)` redirection: back to the workspace database."""
    close()
    with _lock:
        _state["path"] = None


def __getattr__(name: str) -> Any:
    """Every public `Database` method is a module function bound to this process's database."""
    if name.startswith("_") or not hasattr(Database, name):
        raise AttributeError(f"module 'quantstrip.db_handler' has no attribute {name!r}")
    return getattr(database(), name)
