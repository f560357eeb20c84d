"""Order terms beyond MKT/LMT in the canonical request and in the database: trailing stops,
on-close orders, time in force; the orders table rebuilt by migration with its history kept."""

from __future__ import annotations

import importlib
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from quantstrip.brokers import InstrumentSpec, OrderRequest
from quantstrip.db.handler import Database
from quantstrip.errors import ValidationError

AAPL = InstrumentSpec("AAPL")
migrations = importlib.import_module("quantstrip.db.migrate")


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"order_type": "TRAIL"}, "trail_amount"),
        ({"order_type": "TRAIL", "trail_amount": "1", "trail_percent": "2"}, "trail_amount"),
        ({"order_type": "LMT", "limit_price": "9", "trail_amount": "1"}, "trail_amount"),
        ({"order_type": "LOC"}, "limit_price"),
        ({"order_type": "MOC", "tif": "GTC"}, "tif"),
        ({"tif": "SOMETIMES"}, "tif"),
        ({"tif": "GTD"}, "good_till"),
        ({"tif": "DAY", "good_till": datetime(2031, 1, 1, tzinfo=UTC)}, "good_till"),
        ({"tif": "GTD", "good_till": datetime(2031, 1, 1)}, "good_till"),
    ],
)
def test_inconsistent_terms_are_refused_naming_the_field(kw: dict, field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        OrderRequest(AAPL, "BUY", 1, **kw)


def test_terms_are_normalised() -> None:
    gtd = OrderRequest(
        AAPL,
        "BUY",
        1,
        "LMT",
        limit_price="9",
        tif="gtd",
        good_till=datetime(2031, 1, 1, 9, 30, tzinfo=timezone(timedelta(hours=-5))),
    )
    assert gtd.tif == "GTD" and gtd.good_till == datetime(2031, 1, 1, 14, 30, tzinfo=UTC)
    trail = OrderRequest(AAPL, "SELL", 1, "TRAIL", trail_percent=1.5)
    assert trail.trail_percent == Decimal("1.5")


def _old_database(path: Path) -> None:
    """A database at schema version 5 with an order, its status history and a fill."""
    conn = sqlite3.connect(path, isolation_level=None)
    for number, name, script in migrations._migrations():
        if number <= 5:
            migrations._apply(conn, number, name, script)
    now = "2025-03-04 15:00:00.000000"
    conn.executescript(
        f"""
        INSERT INTO strategies (id, name, created_at) VALUES (1, 'swing', '{now}');
        INSERT INTO accounts (id, broker, account_code, created_at)
        VALUES (1, 'ib', 'DU1', '{now}');
        INSERT INTO instruments (id, symbol, created_at) VALUES (1, 'AAPL', '{now}');
        INSERT INTO orders (id, client_order_id, strategy_id, account_id, instrument_id, broker,
            order_type, side, qty_micros, limit_price_micros, status, created_at, updated_at)
        VALUES (1, 'c1', 1, 1, 1, 'ib', 'LMT', 'BUY', 10000000, 99000000, 'Filled',
                '{now}', '{now}');
        INSERT INTO order_events (order_id, status, message, event_time, recorded_at)
        VALUES (1, 'Filled', '', '{now}', '{now}');
        INSERT INTO executions (id, broker, account_id, exec_id, base_exec_id, order_id,
            strategy_id, instrument_id, side, qty_micros, price_micros, exec_time, recorded_at)
        VALUES (1, 'ib', 1, 'e1.01', 'e1', 1, 1, 1, 'BUY', 10000000, 99000000, '{now}', '{now}');
        """
    )
    conn.close()


def test_the_orders_table_is_rebuilt_with_its_rows_and_references(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _old_database(path)
    with Database(path) as db:
        assert db.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        order = db.order_by_client_id("c1")
        assert order is not None and order.limit_price_micros == 99_000_000
        assert [tuple(r) for r in db.query("SELECT client_order_id FROM v_executions")] == [("c1",)]
        assert db.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        trail = db.record_order(
            client_order_id="c2",
            instrument_id=1,
            broker="ib",
            order_type="TRAIL",
            side="SELL",
            qty=10,
            strategy="swing",
            trail_percent="1.5",
            parent_order_id=order.id,
        )
        assert trail.trail_percent_micros == 1_500_000
        with pytest.raises(sqlite3.IntegrityError):
            db.conn.execute("UPDATE orders SET parent_order_id = 999 WHERE id = ?", (trail.id,))
        rows = db.query("SELECT client_order_id, order_type, status FROM v_orders ORDER BY 1")
        assert [tuple(r) for r in rows] == [
            ("c1", "LMT", "Filled"),
            ("c2", "TRAIL", "PendingSubmit"),
        ]


def test_v_orders_shows_the_reason_of_the_last_rejection(tmp_path: Path) -> None:
    with Database(tmp_path / "q.db") as db:
        aapl = db.ensure_instrument("AAPL")
        order = db.record_order(
            client_order_id="r1",
            instrument_id=aapl,
            broker="ib",
            order_type="LMT",
            side="BUY",
            qty=1,
            limit_price=99,
            strategy="s",
        )
        db.update_order_status(order.id, "Rejected", message="201: insufficient margin")
        assert [tuple(r) for r in db.query("SELECT status, status_message FROM v_orders")] == [
            ("Rejected", "201: insufficient margin")
        ]
