"""The SQL editor's engine refuses every escape (issue 17): exactly one SELECT, DuckDB with
external access off and its configuration locked, the ledger attached read-only, and a bound
plan that reads nothing but the ledger. Each escape goes through the page's runner
(`QueryHandle.run`) and through `quantstrip query`; the ledger and the file system stay as they
were. The same escapes through the page in Chromium are in test_security_dashboard.py."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path

import pytest
from support.escapes import DUCKDB_ESCAPES, Witness, fill

from quantstrip.analytics import connection
from quantstrip.analytics.queries import QueryError, QueryHandle, ReadOnlyQueryError, run_query
from quantstrip.demo import build_demo


class Target:
    """A workspace with a demo ledger, a private key file, another SQLite file and an empty
    folder where nothing may appear."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "var" / "quantstrip.db"
        self.secret = root / "var" / "secrets" / "master.key"
        self.other = root / "elsewhere" / "other.db"
        self.out = root / "out"
        self.witness = Witness(self.db, (root,))

    def sql(self, template: str) -> str:
        return fill(template, db=self.db, other=self.other, secret=self.secret, out=self.out)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Target:
    root = tmp_path_factory.mktemp("sqlsafe")
    t = Target(root)
    (root / "var" / "secrets").mkdir(parents=True)
    build_demo(t.db, seed=3, years=1, end=date(2025, 6, 30))
    t.secret.write_bytes(b"not-a-real-fernet-key-but-private\n")
    t.other.parent.mkdir()
    other = sqlite3.connect(t.other)
    other.execute("CREATE TABLE secrets (name TEXT, value TEXT)")
    other.execute("INSERT INTO secrets VALUES ('api', 'hunter2')")
    other.commit()
    other.close()
    t.out.mkdir()
    return t


def refused_or_unknown(message: str) -> bool:
    """Refused by a gate or the engine, or (a file named as a table with replacement scans off)
    not even recognised as something to read."""
    return message.startswith("refused") or "does not exist" in message


@pytest.fixture(autouse=True)
def fresh_engine() -> None:
    connection.reset()


@pytest.mark.parametrize("name", sorted(DUCKDB_ESCAPES))
def test_the_page_runner_refuses_the_escape(target: Target, name: str) -> None:
    run_query("SELECT COUNT(*) FROM executions", db_path=target.db)  # readers' files exist
    before = target.witness.state()
    with pytest.raises((ReadOnlyQueryError, QueryError)) as refused:
        QueryHandle(target.db).run(target.sql(DUCKDB_ESCAPES[name]), limit=100)
    message = str(refused.value)
    assert refused_or_unknown(message), message
    assert "hunter2" not in message and "not-a-real-fernet" not in message
    # The shared connection still reads the ledger, and is still locked down.
    assert len(run_query("SELECT * FROM v_round_trips", db_path=target.db)) > 0
    assert target.witness.state() == before


def test_refusals_name_what_was_refused(target: Target) -> None:
    expected = {
        "two_statements": "2 statements",
        "delete": "DELETE",
        "copy_table": "COPY",
        "attach_memory": "ATTACH",
        "pragma_profiling": "PRAGMA",
        "set_external_access": "SET",
        "read_text_secret": str(target.secret),
        "glob_etc": "/etc/*",
        "sqlite_scan_other": "sqlite_scan",
        "select_sqlite_attach": "sqlite_attach",
        "query_function_hides_sqlite_scan": "query",
        "checkpoint_function": "checkpoint",
        "line_comment_hides_statement": "2 statements",
    }
    for name, words in expected.items():
        with pytest.raises(ReadOnlyQueryError, match="refused") as refused:
            run_query(target.sql(DUCKDB_ESCAPES[name]), db_path=target.db)
        assert words in str(refused.value), (name, str(refused.value))


def test_reads_of_the_ledger_still_work(target: Target) -> None:
    for sql in (
        "SELECT strategy, COUNT(*) AS n FROM v_round_trips GROUP BY 1 ORDER BY 1",
        "WITH t AS (SELECT * FROM v_daily_pnl) SELECT COUNT(*) FROM t",
        "FROM executions LIMIT 3",
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM range(3)",
        "SUMMARIZE executions",
        "SELECT 1; ",
        "-- a comment\nSELECT 42 AS answer /* and another */",
    ):
        frame = run_query(sql, db_path=target.db)
        assert frame is not None and len(frame.columns) > 0, sql


def test_the_guards_function_lists_are_those_of_the_engine_around_loading_the_extension(
    target: Target,
) -> None:
    # Read lazily from the ledger's engine (not at open): the same sets as taking the catalog
    # before and after loading the sqlite extension, as the engine was opened.
    import duckdb

    conn = duckdb.connect(":memory:", config=dict(connection.ENGINE_CONFIG))
    try:
        query = connection._TABLE_FUNCTIONS
        before = {row[0] for row in conn.execute(query).fetchall()}
        conn.execute(f"LOAD '{connection.sqlite_extension_file(conn)}'")
        after = {row[0] for row in conn.execute(query).fetchall()}
    finally:
        conn.close()
    ledger = connection.shared_ledger(target.db)
    assert ledger.table_functions == after
    assert ledger.extension_functions == after - before
    assert {"SQLITE_SCAN", "SQLITE_ATTACH"} <= ledger.extension_functions


def test_the_limit_cannot_be_used_to_inject_sql(target: Target) -> None:
    # The limit is applied by the engine's relation API, never pasted around the user's text.
    frame = run_query("SELECT * FROM range(100) -- trailing comment", limit=7, db_path=target.db)
    assert len(frame) == 7


def test_one_connection_per_process_serves_concurrent_readers(target: Target) -> None:
    base = connection.shared(target.db)
    errors: list[BaseException] = []
    counts: list[int] = []

    def read() -> None:
        try:
            for _ in range(5):
                counts.append(len(run_query("SELECT * FROM v_round_trips", db_path=target.db)))
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=read) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert errors == [] and len(counts) == 20 and len(set(counts)) == 1
    assert connection.shared(target.db) is base


def test_the_shared_connection_follows_a_replaced_ledger(target: Target, tmp_path: Path) -> None:
    copy = tmp_path / "ledger.db"
    copy.write_bytes(target.db.read_bytes())
    first = len(run_query("SELECT * FROM executions", db_path=copy))
    replacement = tmp_path / "replacement.db"
    build_demo(replacement, seed=9, years=2, end=date(2025, 6, 30))
    replacement.replace(copy)
    second = len(run_query("SELECT * FROM executions", db_path=copy))
    assert second != first


def cli_query(target: Target, sql: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantstrip", "query", sql],
        cwd=target.root,
        env={
            "PATH": "/usr/bin:/bin",
            "QUANTSTRIP_WORKSPACE": str(target.root),
            "QUANTSTRIP_HOME": str(target.root / "var"),
            "QUANTSTRIP_KEYRING": "0",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# One real `quantstrip query` process per family of escape (a file read, a file write, an
# ATTACH, a configuration change, a statement hidden behind a comment): the process path is the
# same for every escape. The whole list goes through the same command in this process, one after
# another on one engine (an escape that loosened the engine would let a later one through; the
# page runner's test takes each on a fresh engine). A process per escape took 300 s under load.
CLI_PROCESS_ESCAPES = (
    "read_text_secret",
    "copy_query_parquet",
    "attach_ledger_read_write",
    "set_external_access",
    "line_comment_hides_statement",
)


def cli_query_here(
    target: Target, sql: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    """`quantstrip query SQL` through the CLI's own entry point in this process."""
    from quantstrip.cli import main

    monkeypatch.chdir(target.root)
    monkeypatch.setenv("QUANTSTRIP_WORKSPACE", str(target.root))
    monkeypatch.setenv("QUANTSTRIP_HOME", str(target.root / "var"))
    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    capsys.readouterr()
    umask = os.umask(0o022)  # main() makes the process's files private: keep this process's own
    os.umask(umask)
    try:
        code = main(["query", sql])
    finally:
        os.umask(umask)
    out, err = capsys.readouterr()
    return code, out, err


def _refused(code: int, stderr: str) -> bool:
    return code != 0 and refused_or_unknown(stderr.split("error: ", 1)[-1])


@pytest.mark.slow
def test_quantstrip_query_refuses_every_escape(
    target: Target, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli_query(target, "SELECT COUNT(*) AS n FROM executions").returncode == 0
    before = target.witness.state()
    accepted = {}
    for name in CLI_PROCESS_ESCAPES:
        result = cli_query(target, target.sql(DUCKDB_ESCAPES[name]))
        assert "Traceback" not in result.stderr, (name, result.stderr)
        if not _refused(result.returncode, result.stderr):
            accepted[name] = (result.returncode, result.stdout[-300:], result.stderr[-300:])
    assert (
        cli_query_here(target, "SELECT COUNT(*) AS n FROM executions", capsys, monkeypatch)[0] == 0
    )
    for name, template in sorted(DUCKDB_ESCAPES.items()):
        # (an exception escaping main() would fail the test here: the process would print a
        # traceback)
        code, out, err = cli_query_here(target, target.sql(template), capsys, monkeypatch)
        if not _refused(code, err):
            accepted[f"{name} (in process)"] = (code, out[-300:], err[-300:])
    assert accepted == {}
    assert target.witness.state() == before
