"""Pages read the ledger through read-only connections and never migrate (issue 15 §8): the
monitor opened a write connection and ran migrations twice per client every 2 s. Every page is
built and refreshed in this process against a real demo workspace while `sqlite3.connect` and
the migrator are watched."""

from __future__ import annotations

import importlib
import sqlite3
from datetime import date
from pathlib import Path

import nbformat
import pytest

from quantstrip.db.handler import Database
from quantstrip.demo import build_demo

CLIENTS = {"ticker": "module", "momentum": "module", "pairs": "notebook"}


def register(root: Path, name: str, kind: str) -> None:
    """A client of the registry (clients/<name>/client.toml): with the daemon down the monitor
    lists these, with their last state recorded in the ledger."""
    folder = root / "clients" / name
    folder.mkdir(parents=True)
    if kind == "module":
        (folder / f"{name}.py").write_text("from quantstrip import ClientBase\n")
        (folder / "client.toml").write_text(f'kind = "module"\nentry = "{name}.py"\n')
    else:
        nbformat.write(nbformat.v4.new_notebook(), folder / f"{name}.ipynb")
        (folder / "client.toml").write_text(
            f'kind = "notebook"\nentry = "{name}.ipynb"\nschedule = "every day at 16:00"\n'
        )


class Opens:
    """Every sqlite3 connection opened to this workspace's databases, whether it was read-only,
    and the migrations run on them.

    Only this workspace's files are watched: threads other tests leave in this process write to
    their own workspaces (an example client run in-process keeps its risk watcher, which records
    its presence, migrating first, every 5 s in its test's database). Matched by file name, those
    made this test fail or pass by the order the suite ran in."""

    def __init__(self, workspace: Path) -> None:
        home = workspace / "var"
        self.files = {(home / "quantstrip.db").resolve(), (home / "simulation.db").resolve()}
        self.calls: list[tuple[str, bool]] = []
        self.migrations = 0

    def ours(self, target: str) -> bool:
        return Path(target.split("?")[0].removeprefix("file:")).resolve() in self.files

    def writable(self) -> list[str]:
        return [target for target, read_only in self.calls if not read_only]


def _database_file(target: object) -> str:
    if isinstance(target, sqlite3.Connection):
        return next(row[2] for row in target.execute("PRAGMA database_list") if row[1] == "main")
    return str(target)


@pytest.fixture
def opens(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Opens:
    ledger = workspace / "var" / "quantstrip.db"
    build_demo(ledger, seed=4, years=1, end=date(2025, 6, 30))
    with Database(ledger) as db:
        for name, kind in CLIENTS.items():
            register(workspace, name, kind)
            db.conn.execute(
                "INSERT INTO clients (name, kind, entry, state, updated_at) "
                "VALUES (?, ?, 'x', 'stopped', '2025-06-30T00:00:00Z')",
                (name, kind),
            )
            db.record_client_event(name, "started", "pid 1")
    watched = Opens(workspace)
    real_connect = sqlite3.connect
    migrate_module = importlib.import_module("quantstrip.db.migrate")
    real_migrate = migrate_module.migrate

    def connect(database, *args, **kwargs):  # type: ignore[no-untyped-def]
        target = str(database)
        if watched.ours(target):
            read_only = bool(kwargs.get("uri")) and "mode=ro" in target
            watched.calls.append((target, read_only))
        return real_connect(database, *args, **kwargs)

    def migrate(target, *args, **kwargs):  # type: ignore[no-untyped-def]
        if watched.ours(_database_file(target)):
            watched.migrations += 1
        return real_migrate(target, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    monkeypatch.setattr(migrate_module, "migrate", migrate)
    import quantstrip.db.handler as handler

    monkeypatch.setattr(handler, "migrate", migrate)
    return watched


def test_refreshing_every_page_opens_no_writable_connection_and_never_migrates(
    opens: Opens, workspace: Path
) -> None:
    from quantstrip.dashboard import blotter, home, monitor, notifications

    ledger = workspace / "var" / "quantstrip.db"
    version = sqlite3.connect(ledger).execute("PRAGMA user_version").fetchone()[0]
    opens.calls.clear()

    home.page()
    page = monitor.MonitorPage()
    try:
        page.refresh()
        assert page.rows, "the monitor shows the recorded client"
    finally:
        page.ticker.stop()
    notes = notifications.NotificationsPage()
    notes.refresh()
    blotter.page().refresh()

    assert opens.calls, "the pages read the ledger"
    assert opens.writable() == []
    assert opens.migrations == 0
    assert sqlite3.connect(ledger).execute("PRAGMA user_version").fetchone()[0] == version


def test_a_page_connection_refuses_writes_in_the_engine(workspace: Path) -> None:
    from quantstrip.dashboard.common import read_ledger

    ledger = workspace / "var" / "quantstrip.db"
    build_demo(ledger, seed=4, years=1, end=date(2025, 6, 30))
    with read_ledger() as conn:
        assert conn is not None
        assert conn.execute("SELECT COUNT(*) FROM executions").fetchone()[0] > 0
        for statement in (
            "DELETE FROM executions",
            "CREATE TEMP TABLE t (a)",
            f"ATTACH 'file:{ledger}?mode=rw' AS w",
            f"VACUUM INTO '{workspace / 'copy.db'}'",
            "PRAGMA user_version = 99",
        ):
            with pytest.raises(sqlite3.DatabaseError):
                conn.execute(statement)
    assert not (workspace / "copy.db").exists()


def test_one_connection_serves_a_whole_monitor_refresh(opens: Opens) -> None:
    from quantstrip.dashboard import monitor

    page = monitor.MonitorPage()
    try:
        opens.calls.clear()
        page.refresh()
        ledger_opens = [c for c in opens.calls if c[0].split("?")[0].endswith("quantstrip.db")]
        # The clients' list, and one connection for every client's runs and events (it was
        # two write connections per client).
        assert len(page.rows) == len(CLIENTS)
        assert len(ledger_opens) <= 2, ledger_opens
    finally:
        page.ticker.stop()
