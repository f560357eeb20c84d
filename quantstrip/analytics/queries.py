"""The pre-built query library and the SQL editor's runner.

Built-in queries are `.sql` files beside this module; users add theirs to the workspace's
`queries/` folder and they appear beside the built-ins. Each file starts with
`-- title: ...` and `-- description: ...`. Queries run in DuckDB against the read-only attach;
anything but a read is refused before it runs, with a message naming the statement.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb
import pandas as pd

from quantstrip.analytics.connection import connect
from quantstrip.errors import QuantstripError
from quantstrip.paths import workspace

READ_STATEMENTS = {
    duckdb.StatementType.SELECT,
    duckdb.StatementType.EXPLAIN,
}
HEADER = re.compile(r"^--\s*(title|description)\s*:\s*(.*)$", re.IGNORECASE)


class ReadOnlyQueryError(QuantstripError):
    """The SQL editor only reads; the ledger is changed only by the record_* operations."""


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


def check_read_only(sql: str) -> None:
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise ReadOnlyQueryError(f"SQL error: {exc}") from None
    if not statements:
        raise ReadOnlyQueryError("the query is empty")
    for statement in statements:
        if statement.type not in READ_STATEMENTS:
            kind = str(statement.type).split(".")[-1]
            raise ReadOnlyQueryError(
                f"refused: {kind} statements are not allowed; the SQL editor is read-only "
                "(the database was not touched)"
            )


class QueryHandle:
    """A running query that another thread can cancel with `interrupt()`."""

    def __init__(self, db_path: Path | None = None) -> None:
        self.conn = connect(db_path)
        self._lock = threading.Lock()

    def run(self, sql: str, limit: int | None = None) -> pd.DataFrame:
        check_read_only(sql)
        statements = duckdb.extract_statements(sql)
        try:
            for statement in statements[:-1]:
                self.conn.execute(statement.query)
            last = statements[-1].query
            if limit:
                last = f"SELECT * FROM ({last}) AS q LIMIT {int(limit)}"
            return self.conn.execute(last).df()
        finally:
            self.close()

    def interrupt(self) -> None:
        with self._lock:
            self.conn.interrupt()

    def close(self) -> None:
        with self._lock:
            self.conn.close()


def run_query(sql: str, *, limit: int | None = None, db_path: Path | None = None) -> pd.DataFrame:
    return QueryHandle(db_path).run(sql, limit)
