"""Typed records, one dataclass per table, built from the schema's own column lists.

Columns ending in `_micros` are exact integers; each also reads as a Decimal through the name
without the suffix (`execution.price` for `execution.price_micros`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

from quantstrip.db.units import from_micros

R = TypeVar("R", bound="Record")
_COLUMNS: dict[type, list[str]] = {}


@dataclass(frozen=True)
class Record:
    table: ClassVar[str] = ""

    def __getattr__(self, name: str) -> Decimal | None:
        micros_name = f"{name}_micros"
        if micros_name in self.__dataclass_fields__:
            return from_micros(object.__getattribute__(self, micros_name))
        raise AttributeError(f"{type(self).__name__} has no field {name!r}")

    @classmethod
    def columns(cls) -> list[str]:
        cached = _COLUMNS.get(cls)
        if cached is None:
            cached = _COLUMNS[cls] = [f.name for f in fields(cls)]
        return cached

    @classmethod
    def from_row(cls: type[R], row: sqlite3.Row | dict[str, Any]) -> R:
        data = row if isinstance(row, dict) else dict(row)
        return cls(**{name: data.get(name) for name in cls.columns()})

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Account(Record):
    table: ClassVar[str] = "accounts"
    id: int
    broker: str
    account_code: str
    name: str | None
    base_currency: str
    created_at: str


@dataclass(frozen=True)
class Instrument(Record):
    table: ClassVar[str] = "instruments"
    id: int
    symbol: str
    sec_type: str
    exchange: str
    primary_exchange: str | None
    currency: str
    multiplier_micros: int
    local_symbol: str | None
    expiry: str
    strike_micros: int
    option_right: str
    created_at: str


@dataclass(frozen=True)
class InstrumentBrokerId(Record):
    table: ClassVar[str] = "instrument_broker_ids"
    instrument_id: int
    broker: str
    broker_contract_id: str


@dataclass(frozen=True)
class Strategy(Record):
    table: ClassVar[str] = "strategies"
    id: int
    name: str
    description: str
    position_method: str
    active: int
    created_at: str


@dataclass(frozen=True)
class Order(Record):
    table: ClassVar[str] = "orders"
    id: int
    client_order_id: str
    strategy_id: int | None
    account_id: int | None
    instrument_id: int
    broker: str
    broker_order_id: str | None
    broker_client_id: str | None
    perm_id: str | None
    parent_order_id: int | None
    oca_group: str | None
    order_type: str
    side: str
    qty_micros: int
    limit_price_micros: int | None
    stop_price_micros: int | None
    tif: str
    status: str
    filled_qty_micros: int
    avg_fill_price_micros: int | None
    client_name: str | None
    order_ref: str | None
    created_at: str
    updated_at: str
    trail_amount_micros: int | None = None
    trail_percent_micros: int | None = None
    good_till: str | None = None


@dataclass(frozen=True)
class OrderEvent(Record):
    table: ClassVar[str] = "order_events"
    id: int
    order_id: int
    status: str
    filled_qty_micros: int
    remaining_qty_micros: int | None
    avg_fill_price_micros: int | None
    message: str
    event_time: str
    recorded_at: str


@dataclass(frozen=True)
class Execution(Record):
    table: ClassVar[str] = "executions"
    id: int
    broker: str
    account_id: int
    exec_id: str
    base_exec_id: str
    correction_number: int
    superseded_by: int | None
    order_id: int | None
    strategy_id: int
    instrument_id: int
    side: str
    qty_micros: int
    price_micros: int
    exec_time: str
    liquidity: str
    exchange: str
    recorded_at: str
    currency: str | None = None  # its instrument's (NULL only in rows older than 0013)
    fx_rate_to_base_nanos: int | None = None  # the broker's rate with the fill, if it gave one


@dataclass(frozen=True)
class Commission(Record):
    table: ClassVar[str] = "commissions"
    id: int
    broker: str
    exec_id: str
    execution_id: int | None
    commission_micros: int
    currency: str
    broker_realized_pnl_micros: int | None
    recorded_at: str


@dataclass(frozen=True)
class Position(Record):
    table: ClassVar[str] = "positions"
    strategy_id: int
    account_id: int
    instrument_id: int
    qty_micros: int
    cost_basis_micros: int
    avg_cost_micros: int
    realized_pnl_micros: int
    method: str
    last_exec_time: str
    updated_at: str


@dataclass(frozen=True)
class PositionLot(Record):
    table: ClassVar[str] = "position_lots"
    id: int
    strategy_id: int
    account_id: int
    instrument_id: int
    execution_id: int | None
    open_time: str
    qty_micros: int
    price_micros: int
    cost_basis_micros: int


@dataclass(frozen=True)
class PositionEventRecord(Record):
    table: ClassVar[str] = "position_events"
    id: int
    execution_id: int
    strategy_id: int
    account_id: int
    instrument_id: int
    qty_before_micros: int
    qty_after_micros: int
    avg_cost_before_micros: int
    avg_cost_after_micros: int
    cost_basis_before_micros: int
    cost_basis_after_micros: int
    realized_pnl_gross_micros: int
    method: str
    event_time: str


@dataclass(frozen=True)
class PositionClosure(Record):
    table: ClassVar[str] = "position_closures"
    id: int
    closing_execution_id: int
    opening_execution_id: int | None
    strategy_id: int
    account_id: int
    instrument_id: int
    direction: str
    qty_micros: int
    entry_time: str
    entry_price_micros: int
    exit_time: str
    exit_price_micros: int
    realized_pnl_gross_micros: int


@dataclass(frozen=True)
class StrategyEvent(Record):
    table: ClassVar[str] = "strategy_events"
    id: int
    strategy_id: int
    symbol: str
    event_type: str
    value: float | None
    payload: str
    event_time: str


@dataclass(frozen=True)
class AccountSnapshot(Record):
    table: ClassVar[str] = "account_snapshots"
    id: int
    account_id: int
    net_liquidation_micros: int | None
    cash_micros: int | None
    currency: str
    snapshot_time: str


@dataclass(frozen=True)
class CashEventRecord(Record):
    table: ClassVar[str] = "cash_events"
    id: int
    broker: str
    account_id: int
    broker_txn_id: str
    kind: str
    currency: str
    amount_micros: int
    fx_rate_to_base_micros: int | None
    instrument_id: int | None
    event_time: str
    description: str
    recorded_at: str


@dataclass(frozen=True)
class Client(Record):
    table: ClassVar[str] = "clients"
    id: int
    name: str
    kind: str
    entry: str
    enabled: int
    state: str
    pid: int | None
    started_at: str | None
    last_heartbeat: str | None
    last_error: str | None
    last_error_traceback: str | None
    next_run: str | None
    restart_count: int
    updated_at: str
    restart_times: str
    signature: str | None


@dataclass(frozen=True)
class ClientRun(Record):
    table: ClassVar[str] = "client_runs"
    id: int
    client_name: str
    trigger: str
    scheduled_for: str | None
    started_at: str
    ended_at: str | None
    status: str
    duration_s: float | None
    output_path: str | None
    error: str | None
    error_cell: int | None
    traceback: str | None
    pid: int | None


@dataclass(frozen=True)
class ClientEvent(Record):
    table: ClassVar[str] = "client_events"
    id: int
    client_name: str
    event_type: str
    message: str
    traceback: str | None
    created_at: str


@dataclass(frozen=True)
class Notification(Record):
    table: ClassVar[str] = "notifications"
    id: int
    client_name: str | None
    kind: str
    smtp_account: str | None
    recipients: str
    subject: str
    body: str
    status: str
    attempts: int
    last_error: str | None
    batch_id: int | None
    created_at: str
    sent_at: str | None


RECORDS: dict[str, type[Record]] = {
    cls.table: cls
    for cls in (
        Account,
        Instrument,
        InstrumentBrokerId,
        Strategy,
        Order,
        OrderEvent,
        Execution,
        Commission,
        Position,
        PositionLot,
        PositionEventRecord,
        PositionClosure,
        StrategyEvent,
        AccountSnapshot,
        CashEventRecord,
        Client,
        ClientRun,
        ClientEvent,
        Notification,
    )
}

# Rows of these tables are facts of the ledger or derived from it: written only by the
# record_* operations, never edited or deleted through generic CRUD.
LEDGER_TABLES = frozenset(
    {
        "executions",
        "commissions",
        "order_events",
        "positions",
        "position_lots",
        "position_events",
        "position_closures",
        "cash_events",
    }
)
