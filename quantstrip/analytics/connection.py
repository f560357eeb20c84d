"""A DuckDB connection with the SQLite lifecycle database attached read-only.

DuckDB would download `sqlite_scanner` on first ATTACH and fail offline, so autoloading and
autoinstalling are switched off and the extension comes from the pinned
`duckdb-extension-sqlite-scanner` package. The attach is READ_ONLY: analytics can never write
the ledger, and SQLite's WAL lets it read while clients write.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import duckdb_extensions

from quantstrip.paths import workspace

ALIAS = "lifecycle"


def connect(db_path: str | Path | None = None) -> duckdb.DuckDBPyConnection:
    path = Path(db_path) if db_path else workspace().database
    if not path.exists():
        raise FileNotFoundError(f"database {path} does not exist: run `quantstrip init` first")
    conn = duckdb.connect(
        ":memory:",
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
    )
    duckdb_extensions.import_extension("sqlite_scanner", con=conn)
    conn.execute("LOAD sqlite_scanner")
    escaped = str(path.resolve()).replace("'", "''")
    conn.execute(f"ATTACH '{escaped}' AS {ALIAS} (TYPE sqlite, READ_ONLY)")
    conn.execute(f"USE {ALIAS}")
    return conn
