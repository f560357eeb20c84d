"""DuckDB over the SQLite ledger, locked down so that whoever types SQL can only read the ledger.

The engine, not a list of statements, enforces it:
- the ledger is attached READ_ONLY (the sqlite extension opens the file read-only, so SQLite
  itself refuses a write, even one smuggled through `sqlite_query`);
- `enable_external_access=false`: no file reader or writer (read_text, read_csv, glob, COPY,
  EXPORT), no INSTALL or LOAD, no ATTACH of a DuckDB file, no persistent secrets, no Python
  variables scanned as tables;
- `lock_configuration=true`: no SET or RESET can undo any of it.

The sqlite extension is loaded straight from the pinned `duckdb-extension-sqlite-scanner` package
(DuckDB would otherwise download it on first ATTACH and fail offline; loading the file, rather
than installing it, writes nothing to ~/.duckdb and needs no home directory), before external
access is switched off. With DuckDB 1.5.5 the sqlite extension opens files through its own SQLite
VFS, which `enable_external_access` does not cover (verified: `sqlite_scan` of any file and
`ATTACH ... (TYPE sqlite)` still work). `sql_guard` closes that gap on the bound plan; the table
functions the extension adds are recorded here, from the engine's catalog, for it.

Reports keep one connection per process (`shared()`), and each reader takes a cursor of it
(`cursor()`): DuckDB connections are not for concurrent use from several threads, cursors are.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb

from quantstrip.paths import workspace

ALIAS = "lifecycle"

# Set at connect time; after `lock_configuration` none of them can change.
ENGINE_CONFIG = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "allow_persistent_secrets": False,
    "python_enable_replacements": False,
}
# Spilling to a temporary directory is file access a reader does not need.
LOCKDOWN = (
    "SET temp_directory = ''",
    "SET enable_external_access = false",
    "SET lock_configuration = true",
)
_TABLE_FUNCTIONS = (
    "SELECT DISTINCT upper(function_name) FROM duckdb_functions() WHERE function_type = 'table'"
)


@dataclass(frozen=True)
class Ledger:
    """A locked-down DuckDB connection with the ledger attached read-only."""

    conn: duckdb.DuckDBPyConnection
    path: Path  # the ledger file, resolved, as the engine's plans name it
    identity: tuple[int, int]  # (device, inode) of the file when attached

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own (for one thread) to the same engine, reading the ledger."""
        cur = self.conn.cursor()
        cur.execute(f"USE {ALIAS}")
        return cur

    # The two sets below are read from the engine's catalog when the SQL guard first needs them,
    # not when the ledger is opened: the catalog queries cost a report page 0.1-0.3 s of its
    # start (more under load), and only typed SQL is checked against them.
    @functools.cached_property
    def table_functions(self) -> frozenset[str]:
        """Every table function the engine knows, upper case."""
        return _table_functions(self.conn)

    @functools.cached_property
    def extension_functions(self) -> frozenset[str]:
        """Table functions the sqlite extension registered: they open SQLite files by
        themselves. Those of this engine that a fresh engine without the extension lacks."""
        return self.table_functions - builtin_table_functions()


def _table_functions(conn: duckdb.DuckDBPyConnection) -> frozenset[str]:
    cur = conn.cursor()  # the caller's thread may not be the one using `conn`
    try:
        return frozenset(row[0] for row in cur.execute(_TABLE_FUNCTIONS).fetchall())
    finally:
        cur.close()


@functools.cache
def builtin_table_functions() -> frozenset[str]:
    """The table functions of an engine configured as the ledger's, before any extension."""
    conn = duckdb.connect(":memory:", config=dict(ENGINE_CONFIG))
    try:
        return _table_functions(conn)
    finally:
        conn.close()


def _sql_text(text: str) -> str:
    return text.replace("'", "''")


def sqlite_extension_file(conn: duckdb.DuckDBPyConnection) -> Path:
    """The sqlite extension built for this DuckDB version, from the pinned package."""
    version = conn.execute("PRAGMA version").fetchone()[0]
    package = resources.files("duckdb_extension_sqlite_scanner")
    path = Path(str(package)) / "extensions" / version / "sqlite_scanner.duckdb_extension"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: install duckdb-extension-sqlite-scanner matching duckdb {version}"
        )
    return path


def _ledger_path(db_path: str | Path | None) -> Path:
    path = Path(db_path) if db_path else workspace().database
    if not path.exists():
        raise FileNotFoundError(f"database {path} does not exist: run `quantstrip init` first")
    return path.resolve()


def _identity(path: Path) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


def open_ledger(db_path: str | Path | None = None) -> Ledger:
    """A new locked-down engine over the ledger (the caller closes `conn`)."""
    path = _ledger_path(db_path)
    conn = duckdb.connect(":memory:", config=dict(ENGINE_CONFIG))
    try:
        conn.execute(f"LOAD '{_sql_text(str(sqlite_extension_file(conn)))}'")
        conn.execute(f"ATTACH '{_sql_text(str(path))}' AS {ALIAS} (TYPE sqlite, READ_ONLY)")
        conn.execute(f"USE {ALIAS}")
        for statement in LOCKDOWN:
            conn.execute(statement)
    except BaseException:
        conn.close()
        raise
    return Ledger(conn, path, _identity(path))


def connect(db_path: str | Path | None = None) -> duckdb.DuckDBPyConnection:
    """A new locked-down connection over the ledger (the caller closes it)."""
    return open_ledger(db_path).conn


_lock = threading.Lock()
_shared: dict[Path, tuple[int, Ledger]] = {}


def shared_ledger(db_path: str | Path | None = None) -> Ledger:
    """This process's one engine over `db_path` (default: the workspace ledger).

    Opened on first use; reopened when the file was replaced (a rebuilt demo, a restored
    backup) and after a fork (a DuckDB instance is not shared across processes).
    """
    path = _ledger_path(db_path)
    identity = _identity(path)
    with _lock:
        entry = _shared.get(path)
        if entry is not None and entry[0] == os.getpid() and entry[1].identity == identity:
            return entry[1]
        if entry is not None and entry[0] == os.getpid():
            entry[1].conn.close()
        ledger = open_ledger(path)
        _shared[path] = (os.getpid(), ledger)
        return ledger


def open_in_background(db_path: str | Path | None = None) -> threading.Thread:
    """Start opening this process's shared engine (`shared_ledger`) in a thread, for a page that
    has other start-up work to do meanwhile: loading the sqlite extension (a 34 MB file) is most
    of the opening, and DuckDB releases the interpreter while it runs, so a page can import
    pandas alongside. The first reader takes the engine once it is open (`shared_ledger`'s
    lock). A failure is logged here and raised again by that reader, which opens it itself."""

    def opening() -> None:
        try:
            shared_ledger(db_path)
        except Exception:
            logging.getLogger(__name__).debug("opening the ledger ahead failed", exc_info=True)

    thread = threading.Thread(target=opening, name="open-ledger", daemon=True)
    thread.start()
    return thread


def shared(db_path: str | Path | None = None) -> duckdb.DuckDBPyConnection:
    """This process's one read-only DuckDB connection over the ledger. Do not close it; take a
    `cursor()` per thread (or use `cursor()` below, which also selects the ledger)."""
    return shared_ledger(db_path).conn


def cursor(db_path: str | Path | None = None) -> duckdb.DuckDBPyConnection:
    """A cursor of the shared connection, reading the ledger; close it when done."""
    return shared_ledger(db_path).cursor()


def reset() -> None:
    """Close this process's shared connections (tests; a workspace switch)."""
    with _lock:
        for pid, ledger in _shared.values():
            if pid == os.getpid():
                ledger.conn.close()
        _shared.clear()
