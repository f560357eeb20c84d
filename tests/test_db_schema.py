"""Migrations, CRUD and bad input on real SQLite files."""

from __future__ import annotations

import importlib
import math
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from quantstrip.db.handler import Database, ExecutionInput
from quantstrip.db.migrate import SCHEMA_VERSION, migrate
from quantstrip.errors import AppendOnlyError, NotFoundError, SchemaVersionError, ValidationError

migrate_module = importlib.import_module("quantstrip.db.migrate")

LEDGER = ("executions", "commissions", "orders", "order_events", "position_events", "positions")


def counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in LEDGER}


def test_fresh_database_reaches_the_latest_version_and_rerun_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    assert migrate(path) == SCHEMA_VERSION
    schema = sqlite3.connect(path).execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    assert migrate(path) == SCHEMA_VERSION
    again = sqlite3.connect(path).execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    assert schema == again


def test_a_newer_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    migrate(path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(SchemaVersionError, match="newer than this Quantstrip"):
        Database(path)
    assert path.read_bytes() == before


def test_a_failing_migration_leaves_the_previous_version_intact(
    tmp_path: Path, monkeypatch
) -> None:
    path = tmp_path / "q.db"
    migrate(path)
    broken = [
        *migrate_module._migrations(),
        (SCHEMA_VERSION + 1, "9999_broken.sql", "CREATE TABLE half (x INT);\nNOT SQL AT ALL;\n"),
    ]
    monkeypatch.setattr(migrate_module, "_migrations", lambda: broken)
    monkeypatch.setattr(migrate_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(sqlite3.OperationalError):
        migrate_module.migrate(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchone() is None


def test_init_is_idempotent_from_the_cli(workspace: Path) -> None:
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "quantstrip.cli", "init"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert f"schema v{SCHEMA_VERSION}" in result.stdout
    for folder in ("logs", "runs", "secrets", "queries"):
        assert (workspace / "var" / folder).is_dir()


def test_crud_with_filters_pagination_and_typed_records(tmp_path: Path) -> None:
    with Database(tmp_path / "q.db") as db:
        for i in range(25):
            db.ensure_strategy(f"s{i:02d}", position_method="average" if i % 2 else "fifo")
        page = db.select("strategies", {"position_method": "average"}, limit=5, offset=5)
        assert page.total == 12 and [s.name for s in page.rows] == [
            "s11",
            "s13",
            "s15",
            "s17",
            "s19",
        ]
        event = db.insert_strategy_event("s01", "AAPL", "signal", 1.5, {"z": -2.1})
        assert db.get("strategy_events", event.id).value == 1.5
        db.update("strategies", page.rows[0].id, description="mean reversion")
        assert db.get("strategies", page.rows[0].id).description == "mean reversion"
        row = db.insert("client_events", client_name="x", event_type="note", message="m")
        db.delete("client_events", row.id)
        with pytest.raises(NotFoundError):
            db.get("client_events", row.id)
        with pytest.raises(ValidationError, match="no such column"):
            db.select("strategies", {"nope": 1})


def test_ledger_rows_cannot_be_edited_or_deleted(tmp_path: Path) -> None:
    with Database(tmp_path / "q.db") as db:
        aapl = db.ensure_instrument("AAPL")
        fill = db.record_execution(
            ExecutionInput("sim", "A", "e1", "s", aapl, "BUY", 1, 10, "2025-01-02T15:00:00Z")
        ).execution
        assert fill.price == 10 and fill.qty_micros == 1_000_000
        for operation in (
            lambda: db.delete("executions", fill.id),
            lambda: db.update("executions", fill.id, price_micros=1),
            lambda: db.insert("position_events", execution_id=fill.id),
        ):
            with pytest.raises(AppendOnlyError, match="ledger"):
                operation()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"qty": -5}, "qty"),
        ({"qty": 0}, "qty"),
        ({"side": "HOLD"}, "side"),
        ({"price": math.nan}, "price"),
        ({"price": math.inf}, "price"),
        ({"price": "abc"}, "price"),
        ({"instrument_id": 999}, "instrument_id"),
        ({"exec_id": ""}, "exec_id"),
        ({"exec_time": "yesterday"}, "exec_time"),
    ],
)
def test_bad_execution_input_names_the_field_and_writes_nothing(
    tmp_path: Path, change: dict, field: str
) -> None:
    path = tmp_path / "q.db"
    with Database(path) as db:
        aapl = db.ensure_instrument("AAPL")
        db.record_execution(
            ExecutionInput("sim", "A", "ok", "s", aapl, "BUY", 1, 10, "2025-01-02T15:00:00Z")
        )
        before = counts(path)
        values = {
            "broker": "sim",
            "account": "A",
            "exec_id": "bad",
            "strategy": "s",
            "instrument_id": aapl,
            "side": "BUY",
            "qty": 1,
            "price": 10,
            "exec_time": "2025-01-02T16:00:00Z",
            **change,
        }
        with pytest.raises(ValueError, match=field) as error:
            db.record_execution(ExecutionInput(**values))
        assert isinstance(error.value, ValidationError) and error.value.field == field
        # a batch with one bad fill writes none of them
        good = ExecutionInput(
            **{
                **values,
                **{k: v for k, v in values.items() if k not in change},
                "exec_id": "good",
                "qty": 1,
                "price": 10,
                "side": "BUY",
                "instrument_id": aapl,
                "exec_time": "2025-01-02T16:00:00Z",
            }
        )
        with pytest.raises(ValidationError):
            db.record_executions([good, ExecutionInput(**values)])
        assert counts(path) == before
