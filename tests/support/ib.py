"""Fixtures for the IB adapter tests: the strict TWS test server, an adapter wired to a
recorder on a real SQLite file, and a reader of that file on its own connection."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.tws_server import TwsServer


def wait_for(predicate: Callable[[], Any], what: str, timeout_s: float = 20.0) -> Any:
    """Poll until `predicate` is truthy (bounded); its value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Ledger:
    """Reads the database through its own connection (the recorder writes from IB's thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        with sqlite3.connect(self.path) as conn:
            return conn.execute(sql, params).fetchall()

    def count(self, sql: str, params: tuple = ()) -> int:
        return self.rows(sql, params)[0][0]

    def status(self, client_order_id: str) -> str | None:
        found = self.rows("SELECT status FROM orders WHERE client_order_id = ?", (client_order_id,))
        return found[0][0] if found else None

    def order(self, client_order_id: str) -> dict[str, Any]:
        with sqlite3.connect(self.path) as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute(
                "SELECT * FROM orders WHERE client_order_id = ?", (client_order_id,)
            ).fetchone()
        assert row is not None, f"no order {client_order_id}"
        return dict(row)

    def statuses(self, client_order_id: str) -> list[str]:
        return [
            r[0]
            for r in self.rows(
                "SELECT e.status FROM order_events e JOIN orders o ON o.id = e.order_id "
                "WHERE o.client_order_id = ? ORDER BY e.id",
                (client_order_id,),
            )
        ]

    def messages(self, client_order_id: str) -> list[str]:
        return [
            r[0]
            for r in self.rows(
                "SELECT e.message FROM order_events e JOIN orders o ON o.id = e.order_id "
                "WHERE o.client_order_id = ? AND e.message != '' ORDER BY e.id",
                (client_order_id,),
            )
        ]


@pytest.fixture
def tws() -> Iterator[TwsServer]:
    server = TwsServer(price=100.0).start()
    yield server
    server.stop()


@pytest.fixture
def make_ib(tmp_path: Path, workspace: Path) -> Iterator[Callable[..., tuple[Any, Ledger]]]:
    """`make_ib(tws, client_id=7, **options)`: a connected IbBroker recording into one database
    per test (several adapters share it, as clients of one workspace do)."""
    from quantstrip.brokers import Recorder
    from quantstrip.brokers.ib import IbBroker
    from quantstrip.db.handler import Database

    made: list[tuple[Any, Database]] = []
    path = tmp_path / "ib.db"

    def make(server: TwsServer, client_id: int = 7, connect: bool = True, **options: Any):
        db = Database(path)
        options.setdefault("timeout_s", 5)
        options.setdefault("reconnect_backoff_s", 0.2)
        broker = IbBroker(host="127.0.0.1", port=server.port, client_id=client_id, **options)
        broker.subscribe(Recorder(db))
        made.append((broker, db))
        if connect:
            broker.connect()
        return broker, Ledger(path)

    yield make
    for broker, db in reversed(made):
        broker.close()
        db.close()


@pytest.fixture
def ib(tws: TwsServer, make_ib) -> tuple[Any, Ledger]:
    return make_ib(tws)
