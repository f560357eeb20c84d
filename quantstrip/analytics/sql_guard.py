"""What a typed query may do: read the ledger, nothing else.

Three gates, all answered by the DuckDB engine itself, before anything runs:
1. the engine's parser: exactly one statement, and it is a SELECT (WITH ... SELECT, FROM ...,
   SUMMARIZE and DESCRIBE parse as SELECT too); comments cannot hide a second statement from it;
2. the engine's parse tree: no table function of the sqlite extension (it opens SQLite files with
   its own VFS, which `enable_external_access=false` does not cover) and no dynamic SQL
   (`query()`, `query_table()`), so such a query is refused before any file is opened;
3. the engine's bound plan (EXPLAIN, which plans but does not run): every SQLite scan reads the
   ledger file, and every other table function is a generator or a catalog listing.
Whatever passes still runs on a connection with external access off, its configuration locked
and the ledger attached read-only (analytics/connection.py): the gates decide what to refuse with
a clear message, the engine's settings are what make a missed case harmless.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from quantstrip.errors import QuantstripError

if TYPE_CHECKING:  # duckdb is imported when a query is checked (the SQL editor opens without it)
    import duckdb

    from quantstrip.analytics.connection import Ledger

DYNAMIC_SQL = frozenset({"QUERY", "QUERY_TABLE"})
# Table functions that only generate rows or list the catalog: allowed in a read.
READ_TABLE_FUNCTIONS = frozenset(
    {
        "RANGE",
        "GENERATE_SERIES",
        "UNNEST",
        "REPEAT",
        "PRAGMA_TABLE_INFO",
        "PRAGMA_SHOW",
        "DUCKDB_COLUMNS",
        "DUCKDB_CONSTRAINTS",
        "DUCKDB_FUNCTIONS",
        "DUCKDB_INDEXES",
        "DUCKDB_KEYWORDS",
        "DUCKDB_SCHEMAS",
        "DUCKDB_TABLES",
        "DUCKDB_TYPES",
        "DUCKDB_VIEWS",
    }
)
LEDGER_SCAN = "SQLITE_SCAN"
TAIL = "; SQL here is read-only: one SELECT over the ledger (nothing was run)"


class ReadOnlyQueryError(QuantstripError):
    """The SQL surfaces only read; the ledger is changed only by the record_* operations."""


class QueryError(QuantstripError):
    """A query that is allowed failed in the engine (syntax, unknown column, interrupted...)."""


def single_select(sql: str) -> str:
    """Gate 1: the text of the one SELECT statement in `sql`."""
    import duckdb

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"SQL error: {exc}") from None
    if not statements:
        raise ReadOnlyQueryError("refused: the query is empty" + TAIL)
    if len(statements) > 1:
        kinds = ", ".join(_kind(s) for s in statements)
        raise ReadOnlyQueryError(f"refused: {len(statements)} statements ({kinds})" + TAIL)
    statement = statements[0]
    if statement.type != duckdb.StatementType.SELECT:
        raise ReadOnlyQueryError(f"refused: {_kind(statement)} statements are not allowed" + TAIL)
    return statement.query


def _kind(statement: Any) -> str:
    return str(statement.type).split(".")[-1]


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _table_functions_in_tree(cur: duckdb.DuckDBPyConnection, statement: str) -> set[str]:
    tree = json.loads(cur.execute("SELECT json_serialize_sql(?)", [statement]).fetchone()[0])
    if tree.get("error"):
        # Nothing to inspect before binding (the plan gate still applies).
        return set()
    return {
        str(node["function"].get("function_name", "")).upper()
        for node in _walk(tree)
        if node.get("type") == "TABLE_FUNCTION" and isinstance(node.get("function"), dict)
    }


def _plan_nodes(cur: duckdb.DuckDBPyConnection, statement: str) -> Iterator[dict[str, Any]]:
    for _key, text in cur.execute(f"EXPLAIN (FORMAT json) {statement}").fetchall():
        for node in _walk(json.loads(text)):
            if "name" in node:
                yield node


def check(cur: duckdb.DuckDBPyConnection, ledger: Ledger, sql: str) -> str:
    """The one SELECT in `sql`, once all three gates agree it only reads the ledger; else
    ReadOnlyQueryError naming what was refused."""
    import duckdb

    statement = single_select(sql)
    named = _table_functions_in_tree(cur, statement)
    for name in sorted(named & (ledger.extension_functions | DYNAMIC_SQL)):
        why = "runs SQL given as text" if name in DYNAMIC_SQL else "opens SQLite files itself"
        raise ReadOnlyQueryError(f"refused: {name.lower()}() {why}" + TAIL)
    try:
        nodes = list(_plan_nodes(cur, statement))
    except duckdb.PermissionException as exc:
        raise ReadOnlyQueryError(f"refused by the engine: {_first_line(exc)}" + TAIL) from None
    except duckdb.Error as exc:
        raise QueryError(f"SQL error: {_first_line(exc)}") from None
    for node in nodes:
        name = str(node["name"]).upper()
        if name == LEDGER_SCAN:
            source = (node.get("extra_info") or {}).get("File")
            if source != str(ledger.path):
                raise ReadOnlyQueryError(f"refused: the query reads {source}, not the ledger{TAIL}")
        elif name in ledger.table_functions and name not in READ_TABLE_FUNCTIONS:
            raise ReadOnlyQueryError(
                f"refused: {name.lower()}() is not a read of the ledger" + TAIL
            )
    return statement


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
