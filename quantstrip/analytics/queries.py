"""The pre-built query library and the SQL editor's runner.

Built-in queries are `.sql` files beside this module; users add theirs to the workspace's
`queries/` folder and they appear beside the built-ins. Each file starts with
`-- title: ...` and `-- description: ...`. Typed SQL runs on a cursor of the process's one
locked-down DuckDB connection and must pass `sql_guard` first: one SELECT that reads only the
ledger. Everything else is refused with a message naming what was refused.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from quantstrip.analytics import sql_guard
from quantstrip.analytics.sql_guard import QueryError, ReadOnlyQueryError
from quantstrip.paths import workspace

if TYPE_CHECKING:  # DuckDB and pandas load with the first query, not with the query library
    import pandas as pd

__all__ = [
    "QueryError",
    "QueryHandle",
    "ReadOnlyQueryError",
    "SavedQuery",
    "check_read_only",
    "list_queries",
    "run_query",
]
HEADER = re.compile(r"^--\s*(title|description)\s*:\s*(.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class SavedQuery:
    name: str
    title: str
    description: str
    sql: str
    source: str  # "builtin" or "user"


def _parse(name: str, text: str, source: str) -> SavedQuery:
    meta = {"title": name.replace("_", " ").capitalize(), "description": ""}
    for line in text.splitlines():
        match = HEADER.match(line.strip())
        if match:
            meta[match.group(1).lower()] = match.group(2).strip()
        elif line.strip() and not line.strip().startswith("--"):
            break
    return SavedQuery(name, meta["title"], meta["description"], text.strip(), source)


def list_queries(user_folder: Path | None = None) -> list[SavedQuery]:
    found = []
    for entry in sorted(
        resources.files("quantstrip.analytics").joinpath("queries").iterdir(), key=lambda e: e.name
    ):
        if entry.name.endswith(".sql"):
            found.append(_parse(entry.name[:-4], entry.read_text(encoding="utf-8"), "builtin"))
    folder = user_folder or workspace().user_queries
    if folder.exists():
        for path in sorted(folder.glob("*.sql")):
            found.append(_parse(path.stem, path.read_text(encoding="utf-8"), "user"))
    return found


def check_read_only(sql: str) -> str:
    """The one SELECT statement in `sql`, or ReadOnlyQueryError (the parser gate only; `run`
    applies every gate)."""
    return sql_guard.single_select(sql)


class QueryHandle:
    """A query on its own cursor of the shared engine, that another thread can `interrupt()`."""

    def __init__(self, db_path: Path | None = None) -> None:
        from quantstrip.analytics.connection import shared_ledger

        self.ledger = shared_ledger(db_path)
        self.cursor = self.ledger.cursor()
        self._lock = threading.Lock()

    def run(self, sql: str, limit: int | None = None) -> pd.DataFrame:
        import duckdb

        try:
            statement = sql_guard.check(self.cursor, self.ledger, sql)
            relation = self.cursor.sql(statement)
            if limit:
                relation = relation.limit(int(limit))
            return relation.df()
        except duckdb.PermissionException as exc:
            raise ReadOnlyQueryError(f"refused by the engine: {exc}") from None
        except duckdb.Error as exc:
            raise QueryError(f"SQL error: {exc}") from None
        finally:
            self.close()

    def interrupt(self) -> None:
        with self._lock:
            self.cursor.interrupt()

    def close(self) -> None:
        with self._lock:
            self.cursor.close()


def run_query(sql: str, *, limit: int | None = None, db_path: Path | None = None) -> pd.DataFrame:
    return QueryHandle(db_path).run(sql, limit)
