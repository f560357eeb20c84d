"""The escapes an attacker tries through the read-only SQL surfaces, and a witness that nothing
changed: the ledger's checksum and every file under the watched folders.

Placeholders: {db} the ledger, {other} another SQLite file the process can read (it holds a
`secrets` table), {secret} a private file (the vault key), {out} a folder nothing may appear in.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

# DuckDB dialect: the SQL editor page, `quantstrip query`, QueryHandle.
DUCKDB_ESCAPES: dict[str, str] = {
    # Reproduced in issue 17: EXPLAIN ANALYZE runs its statement.
    "explain_analyze_copy": "EXPLAIN ANALYZE COPY (SELECT 'x') TO '{out}/x.csv'; SELECT 1",
    "explain_analyze_copy_over_ledger": "EXPLAIN ANALYZE COPY (SELECT 'x') TO '{db}'",
    "read_text_secret": "SELECT * FROM read_text('{secret}')",
    "read_csv_passwd": "SELECT * FROM read_csv('/etc/passwd', sep = ':')",
    "glob_etc": "SELECT * FROM glob('/etc/*')",
    "sqlite_scan_other": "SELECT * FROM sqlite_scan('{other}', 'secrets')",
    # COPY and EXPORT
    "copy_table": "COPY executions TO '{out}/executions.csv'",
    "copy_query_parquet": "COPY (SELECT 1 AS a) TO '{out}/a.parquet' (FORMAT parquet)",
    "copy_from": "COPY executions FROM '{other}'",
    "export_database": "EXPORT DATABASE '{out}/export'",
    # extensions and settings
    "install_extension": "INSTALL httpfs",
    "load_extension": "LOAD httpfs",
    "load_extension_file": "LOAD '{out}/evil.duckdb_extension'",
    "set_external_access": "SET enable_external_access = true",
    "reset_external_access": "RESET enable_external_access",
    "unlock_configuration": "SET lock_configuration = false",
    "set_profiling_output": "SET profiling_output = '{out}/profile.txt'",
    "set_variable": "SET VARIABLE x = 1",
    "pragma_profiling": "PRAGMA enable_profiling",
    "pragma_profiling_output": "PRAGMA profiling_output = '{out}/profile.txt'",
    "pragma_force_checkpoint": "PRAGMA force_checkpoint",
    "pragma_threads": "PRAGMA threads = 1",
    "create_secret": "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
    # ATTACH in all its forms
    "attach_ledger_read_write": "ATTACH '{db}' AS w (TYPE sqlite)",
    "attach_ledger_uri_rw": "ATTACH 'file:{db}?mode=rw' AS w (TYPE sqlite)",
    "attach_new_sqlite": "ATTACH '{out}/new.sqlite' AS n (TYPE sqlite)",
    "attach_new_duckdb": "ATTACH '{out}/new.duckdb' AS n",
    "attach_memory": "ATTACH ':memory:' AS m",
    "attach_other_read_only": "ATTACH '{other}' AS o (TYPE sqlite, READ_ONLY)",
    "call_sqlite_attach": "CALL sqlite_attach('{other}')",
    "select_sqlite_attach": "SELECT * FROM sqlite_attach('{other}')",
    "detach_ledger": "DETACH lifecycle",
    "use_memory": "USE memory",
    # the extension's own functions and dynamic SQL
    "sqlite_query_delete": (
        "SELECT * FROM sqlite_query('lifecycle', 'DELETE FROM strategy_events RETURNING id')"
    ),
    "sqlite_scan_in_subquery": (
        "SELECT * FROM strategies "
        "WHERE name IN (SELECT name FROM sqlite_scan('{other}', 'secrets'))"
    ),
    "query_function_hides_sqlite_scan": (
        "SELECT * FROM query('SELECT * FROM sqlite_scan(''{other}'', ''secrets'')')"
    ),
    "qualified_sqlite_scan": "SELECT * FROM system.main.sqlite_scan('{other}', 'secrets')",
    "upper_case_sqlite_scan": "SELECT * FROM SQLITE_SCAN('{other}', 'secrets')",
    "read_blob_secret": "SELECT * FROM read_blob('{secret}')",
    "from_first_read_text": "FROM read_text('{secret}')",
    "replacement_scan_file": "SELECT * FROM '{secret}'",
    "summarize_read_csv": "SUMMARIZE SELECT * FROM read_csv('/etc/passwd')",
    "checkpoint_function": "SELECT * FROM checkpoint()",
    # statements that change data or state
    "delete": "DELETE FROM executions",
    "update": "UPDATE strategies SET name = 'x'",
    "insert": "INSERT INTO strategies (name, created_at) VALUES ('x', 'y')",
    "drop": "DROP TABLE executions",
    "create_table_as": "CREATE TABLE memory.main.t AS SELECT 1 AS a",
    "create_macro": "CREATE MACRO m() AS TABLE SELECT * FROM read_text('{secret}')",
    "checkpoint": "CHECKPOINT",
    "vacuum": "VACUUM",
    "begin": "BEGIN TRANSACTION",
    "explain_analyze_select": "EXPLAIN ANALYZE SELECT 1",
    # several statements, and comments hiding them
    "two_statements": "SELECT 1; DELETE FROM executions",
    "select_then_copy": "SELECT 1; COPY (SELECT 1) TO '{out}/y.csv'",
    "line_comment_hides_statement": "SELECT 1 -- harmless\n; COPY (SELECT 1) TO '{out}/c.csv'",
    "block_comment_hides_statement": "/* just a report */ COPY (SELECT 1) TO '{out}/d.csv'",
    "comment_inside_statement": "SELECT 1 /* ; */; ATTACH '{db}' AS w (TYPE sqlite)",
    "trailing_statement_after_comment": "SELECT 1 /* x */ ;\n/* y */ DETACH lifecycle",
}

# SQLite dialect: the ODBC DSN (Excel).
SQLITE_ESCAPES: dict[str, str] = {
    "attach_ledger_rw_uri": "ATTACH 'file:{db}?mode=rw' AS w",
    "attach_ledger_path": "ATTACH '{db}' AS w",
    "attach_new_file": "ATTACH '{out}/new.db' AS n",
    "attach_memory": "ATTACH ':memory:' AS m",
    "attach_other": "ATTACH 'file:{other}?mode=ro' AS o",
    "attach_function_form": "SELECT sqlite_attach('{other}')",
    "vacuum_into": "VACUUM INTO '{out}/copy.db'",
    "vacuum_into_ledger_dir": "VACUUM INTO '{db}.copy'",
    "vacuum": "VACUUM",
    "blob_export": "SELECT blob_export(x'41', '{out}/blob.bin')",
    "blob_import": "SELECT blob_import('{secret}')",
    "load_extension": "SELECT load_extension('{out}/evil.so')",
    "delete": "DELETE FROM strategy_events",
    "update": "UPDATE strategies SET name = 'x'",
    "insert": "INSERT INTO strategies (name, created_at) VALUES ('x', 'y')",
    "drop_view": "DROP VIEW v_executions",
    "create_table": "CREATE TABLE t (a)",
    "create_temp_table": "CREATE TEMP TABLE t AS SELECT * FROM executions",
    "create_trigger": "CREATE TEMP TRIGGER t AFTER INSERT ON strategies BEGIN SELECT 1; END",
    "pragma_query_only_off": "PRAGMA query_only = 0",
    "pragma_journal_mode": "PRAGMA journal_mode = DELETE",
    "pragma_writable_schema": "PRAGMA writable_schema = 1",
    "pragma_user_version": "PRAGMA user_version = 99",
    "reindex": "REINDEX",
    "analyze": "ANALYZE",
    "two_statements": "SELECT 1; DELETE FROM strategy_events",
    "comment_hides_statement": "SELECT 1 /* harmless */; DELETE FROM strategy_events",
    "line_comment_then_statement": "-- report\nDELETE FROM strategy_events",
    "replace_into": "REPLACE INTO strategies (id, name, created_at) VALUES (1, 'x', 'y')",
}


TRADING_TABLES = (
    "accounts",
    "commissions",
    "executions",
    "instruments",
    "order_events",
    "orders",
    "position_events",
    "positions",
    "strategies",
    "strategy_events",
)


@dataclass(frozen=True)
class Witness:
    """What must not change: the ledger (its bytes, or with a live daemon writing its client
    tables, the rows of `tables`) and the files under `folders`."""

    db: Path
    folders: tuple[Path, ...]
    tables: tuple[str, ...] = ()
    raw: bool = True

    def ledger_checksum(self) -> str:
        """The ledger's logical content (its schema, views included, and every table's rows), as
        the engines would read it. A view's rows follow from its definition and the tables: they
        are not read again (each view re-ran the analytics, seconds per check under load)."""
        digest = hashlib.sha256()
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            tables = list(self.tables) or [
                "sqlite_master",
                *(
                    row[0]
                    for row in conn.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
                    )
                ),
            ]
            for table in tables:
                digest.update(table.encode())
                for row in conn.execute(f'SELECT * FROM "{table}" ORDER BY 1'):
                    digest.update(repr(tuple(row)).encode())
            digest.update(repr(conn.execute("PRAGMA user_version").fetchone()).encode())
        finally:
            conn.close()
        return digest.hexdigest()

    def files(self) -> dict[str, tuple[int, int]]:
        """Every file under the watched folders with its size and mode (SQLite's -shm and -wal
        files are left out: readers may create and size them)."""
        found: dict[str, tuple[int, int]] = {}
        for folder in self.folders:
            for path in sorted(folder.rglob("*")):
                if path.name.endswith(("-shm", "-wal", "-journal")):
                    continue
                stat = path.lstat()
                found[str(path)] = (stat.st_size if path.is_file() else 0, stat.st_mode)
        return found

    def state(self) -> tuple[str, str, dict[str, tuple[int, int]]]:
        raw = hashlib.sha256(self.db.read_bytes()).hexdigest() if self.raw else ""
        return raw, self.ledger_checksum(), self.files()


def fill(template: str, **paths: Path | str) -> str:
    text = template
    for key, value in paths.items():
        text = text.replace("{" + key + "}", str(value))
    return text
