"""The Quantstrip DSN cannot write (issue 17), through real unixODBC + libsqliteodbc + pyodbc:
with `mode=ro` alone, ATTACH ... mode=rw deleted ledger rows, ATTACH created files, VACUUM INTO
wrote copies, the driver's blob_export()/blob_import() wrote and read any file and
load_extension() ran any shared library. Each escape is refused by the engine, the ledger and
the file system stay as they were, and Excel's reads (views, catalog calls) still work."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from datetime import date
from pathlib import Path

import pytest
from conftest import require_component
from support.escapes import SQLITE_ESCAPES, Witness, fill

from quantstrip.demo import build_demo
from quantstrip.odbc import DSN_NAME, VIEWS, install_dsn, write_snapshot

pyodbc = pytest.importorskip("pyodbc")

EVIL = """
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1
int sqlite3_evil_init(sqlite3 *db, char **err, const sqlite3_api_routines *api) {
    SQLITE_EXTENSION_INIT2(api);
    sqlite3_exec(db, "SELECT 1", 0, 0, 0);
    return sqlite3_vfs_find(0) && sqlite3_open_v2("MARKER", &db,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, 0) == SQLITE_OK ? SQLITE_OK : SQLITE_ERROR;
}
"""


def _components() -> bool:
    return (
        bool(shutil.which("odbcinst"))
        and bool(shutil.which("isql"))
        and any(Path("/").glob("usr/lib/*/odbc/libsqlite3odbc.so"))
        and bool(shutil.which("cc") or shutil.which("gcc"))
        and Path("/usr/include/sqlite3ext.h").exists()
    )


class Target:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "var" / "quantstrip.db"
        self.secret = root / "var" / "secrets" / "master.key"
        self.other = root / "elsewhere" / "other.db"
        self.out = root / "out"
        self.evil = root / "tools" / "evil.so"
        self.marker = root / "tools" / "MARKER"
        self.witness = Witness(self.db, (root / "var", root / "elsewhere", self.out))

    def sql(self, template: str) -> str:
        text = fill(template, db=self.db, other=self.other, secret=self.secret, out=self.out)
        return text.replace(f"{self.out}/evil.so", str(self.evil))


@pytest.fixture
def target(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Target:
    require_component(_components(), "unixODBC, libsqliteodbc, a C compiler and libsqlite3-dev")
    monkeypatch.setenv("ODBCINI", str(tmp_path / "odbc.ini"))
    t = Target(workspace)
    build_demo(t.db, seed=7, years=1, end=date(2025, 6, 30))
    t.secret.parent.mkdir(parents=True, exist_ok=True)
    t.secret.write_bytes(b"private-key-bytes\n")
    t.other.parent.mkdir()
    other = sqlite3.connect(t.other)
    other.execute("CREATE TABLE secrets (name TEXT, value TEXT)")
    other.execute("INSERT INTO secrets VALUES ('api', 'hunter2')")
    other.commit()
    other.close()
    t.out.mkdir()
    t.evil.parent.mkdir()
    source = t.evil.with_suffix(".c")
    source.write_text(EVIL.replace("MARKER", str(t.marker)))
    compiler = shutil.which("cc") or shutil.which("gcc")
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-o", str(t.evil), str(source)], check=True, timeout=120
    )
    return t


def _connect():  # type: ignore[no-untyped-def]
    return pyodbc.connect(f"DSN={DSN_NAME}", autocommit=True)


@pytest.mark.odbc
def test_the_dsn_refuses_every_escape_and_nothing_changes(target: Target) -> None:
    install_dsn(target.db)
    conn = _connect()
    cursor = conn.cursor()
    cursor.execute("SELECT COUNT(*) FROM v_executions")
    assert cursor.fetchone()[0] > 0
    before = target.witness.state()
    accepted = {}
    for name, template in sorted(SQLITE_ESCAPES.items()):
        try:
            cursor.execute(target.sql(template))
            try:
                accepted[name] = repr(cursor.fetchall())[:200]
            except pyodbc.Error:
                accepted[name] = "(ran)"
        except pyodbc.Error as exc:
            assert "hunter2" not in str(exc) and "private-key" not in str(exc)
    conn.close()
    assert accepted == {}
    assert not target.marker.exists(), "load_extension ran a library"
    assert target.witness.state() == before
    strategy_events = sqlite3.connect(target.db).execute("SELECT COUNT(*) FROM strategy_events")
    assert strategy_events.fetchone()[0] > 0


@pytest.mark.odbc
def test_excel_reads_still_work_through_the_guard(target: Target) -> None:
    install_dsn(target.db)
    cursor = _connect().cursor()
    assert set(VIEWS) <= {row.table_name for row in cursor.tables(tableType="VIEW")}
    assert len(list(cursor.columns(table="executions"))) > 5
    assert list(cursor.primaryKeys(table="executions"))
    assert list(cursor.statistics(table="executions"))
    cursor.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) "
        "SELECT COUNT(*) FROM n"
    )
    assert cursor.fetchone()[0] == 3
    cursor.execute("PRAGMA user_version")
    assert cursor.fetchone()[0] > 0


@pytest.mark.odbc
def test_the_dsn_reads_the_live_ledger(target: Target) -> None:
    install_dsn(target.db)
    cursor = _connect().cursor()
    cursor.execute("SELECT COUNT(*) FROM strategies")
    before = cursor.fetchone()[0]
    writer = sqlite3.connect(target.db)
    writer.execute("INSERT INTO strategies (name, created_at) VALUES ('fresh', '2025-07-01')")
    writer.commit()
    writer.close()
    cursor.execute("SELECT COUNT(*) FROM strategies")
    assert cursor.fetchone()[0] == before + 1


@pytest.mark.odbc
def test_a_guard_that_does_not_hold_leaves_no_dsn(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quantstrip import odbc_guard

    ini = tmp_path / "odbc.ini"
    ini.write_text("[Quantstrip]\nDriver=SQLite3\nDatabase=/old/unguarded.db\n\n[Other]\nx=1\n")
    # A "guard" that loads but guards nothing: the probes get through, the install refuses.
    fake = EVIL.replace("evil", "quantstripodbcguard").replace("MARKER", str(tmp_path / "m"))
    monkeypatch.setattr(odbc_guard, "source", lambda: fake)
    with pytest.raises(odbc_guard.OdbcGuardError, match="did not hold"):
        install_dsn(target.db, guard_dir=tmp_path / "guard")
    assert "[Quantstrip]" not in ini.read_text() and "[Other]" in ini.read_text()


def test_a_snapshot_is_a_consistent_copy(target: Target, tmp_path: Path) -> None:
    copy = write_snapshot(target.db, tmp_path / "share" / "quantstrip-snapshot.db")
    query = "SELECT COUNT(*), SUM(qty_micros) FROM executions"
    assert sqlite3.connect(copy).execute(query).fetchone() == (
        sqlite3.connect(target.db).execute(query).fetchone()
    )
