"""What the ledger says about a strategy's exposure: position, working orders, the day's PnL.

Reads only, through the connection of the database the broker records into (its recorder's), in
the thread that places the order, so the figures include that thread's own last writes.

The day's PnL, for a strategy or an account, is computed the way a desk computes it, so that a
position bought last week and falling today counts today's fall and nothing older:

    day PnL = market value now - market value at the start of the day
              - net cash paid for today's fills - today's commissions

Market value now uses a fresh mark (else the figure is unknown and entries are refused while a
loss limit is set); the start-of-day value uses the last mark before the day began, else the
position's average cost (the loss since entry is then counted as today's: never less strict).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from quantstrip.brokers.events import InstrumentSpec
from quantstrip.brokers.marks import stored_before
from quantstrip.brokers.risk.rules import DayLoss
from quantstrip.db.units import utc_text

MICROS = Decimal(1_000_000)
OPEN_STATUSES = ("PendingSubmit", "PreSubmitted", "Submitted", "PartiallyFilled", "ApiPending")

# instrument_id -> a fresh price (None: no fresh mark)
FreshPrice = Callable[[int], Decimal | None]


def instrument_id(conn: sqlite3.Connection, spec: InstrumentSpec) -> int | None:
    row = conn.execute(
        "SELECT id FROM instruments WHERE symbol = ? AND sec_type = ? AND currency = ? "
        "AND expiry = ? AND strike_micros = ? AND option_right = ? ORDER BY id LIMIT 1",
        (
            spec.symbol,
            spec.sec_type,
            spec.currency,
            spec.expiry,
            int(spec.strike * MICROS),
            spec.option_right,
        ),
    ).fetchone()
    return int(row[0]) if row else None


def strategy_id(conn: sqlite3.Connection, name: str) -> int | None:
    row = conn.execute("SELECT id FROM strategies WHERE name = ?", (name,)).fetchone()
    return int(row[0]) if row else None


def position(conn: sqlite3.Connection, strategy: int, instrument: int, broker: str) -> Decimal:
    """The strategy's filled position in the instrument, over its accounts at this broker."""
    row = conn.execute(
        "SELECT COALESCE(SUM(p.qty_micros), 0) FROM positions p "
        "JOIN accounts a ON a.id = p.account_id "
        "WHERE p.strategy_id = ? AND p.instrument_id = ? AND a.broker = ?",
        (strategy, instrument, broker),
    ).fetchone()
    return Decimal(row[0]) / MICROS


@dataclass(frozen=True)
class Working:
    buy: Decimal
    sell: Decimal


def working(conn: sqlite3.Connection, strategy: int, instrument: int, broker: str) -> Working:
    """Remaining quantity of the strategy's open orders in the instrument, per side."""
    marks = ", ".join("?" * len(OPEN_STATUSES))
    rows = conn.execute(
        "SELECT side, SUM(MAX(qty_micros - filled_qty_micros, 0)) FROM orders "
        f"WHERE strategy_id = ? AND instrument_id = ? AND broker = ? AND status IN ({marks}) "
        "GROUP BY side",
        (strategy, instrument, broker, *OPEN_STATUSES),
    ).fetchall()
    sides = {side: Decimal(total or 0) / MICROS for side, total in rows}
    return Working(sides.get("BUY", Decimal(0)), sides.get("SELL", Decimal(0)))


def day_pnl(
    conn: sqlite3.Connection,
    *,
    day_start: datetime,
    fresh_price: FreshPrice,
    strategy: int | None = None,
    account: str | None = None,
) -> DayLoss:
    """The day's PnL of one strategy or one account (see the module docstring)."""
    if (strategy is None) == (account is None):
        raise ValueError("day_pnl: give a strategy or an account")
    if strategy is not None:
        scope_sql, scope_args = "p.strategy_id = ?", [strategy]
        fills_sql, fills_args = "e.strategy_id = ?", [strategy]
    else:
        scope_sql, scope_args = "a.account_code = ?", [account]
        fills_sql, fills_args = "a.account_code = ?", [account]
    start = utc_text(day_start)
    held: dict[tuple[int, int, int], int] = {}
    multipliers: dict[int, int] = {}
    for row in conn.execute(
        "SELECT p.strategy_id, p.account_id, p.instrument_id, p.qty_micros, i.multiplier_micros "
        "FROM positions p JOIN accounts a ON a.id = p.account_id "
        f"JOIN instruments i ON i.id = p.instrument_id WHERE {scope_sql}",
        scope_args,
    ):
        held[(row[0], row[1], row[2])] = row[3]
        multipliers[row[2]] = row[4]
    bought_today: dict[tuple[int, int, int], int] = defaultdict(int)
    cash_micros = Decimal(0)  # paid for today's fills (negative when sold)
    commission_micros = 0
    for row in conn.execute(
        "SELECT e.strategy_id, e.account_id, e.instrument_id, e.side, e.qty_micros, "
        "e.price_micros, i.multiplier_micros, COALESCE(c.commission_micros, 0) "
        "FROM executions e JOIN accounts a ON a.id = e.account_id "
        "JOIN instruments i ON i.id = e.instrument_id "
        "LEFT JOIN commissions c ON c.execution_id = e.id "
        f"WHERE {fills_sql} AND e.exec_time >= ? AND e.superseded_by IS NULL",
        [*fills_args, start],
    ):
        key = (row[0], row[1], row[2])
        signed = row[4] if row[3] == "BUY" else -row[4]
        bought_today[key] += signed
        multipliers[row[2]] = row[6]
        cash_micros += Decimal(signed) * row[5] * row[6] / MICROS / MICROS
        commission_micros += row[7]
    value_now = Decimal(0)
    value_start = Decimal(0)
    for key in set(held) | set(bought_today):
        qty_now = held.get(key, 0)
        qty_start = qty_now - bought_today.get(key, 0)
        instrument = key[2]
        multiplier = Decimal(multipliers[instrument]) / MICROS
        if qty_now:
            price = fresh_price(instrument)
            if price is None:
                symbol = _symbol(conn, instrument)
                return DayLoss(None, f"no fresh mark for {symbol}")
            value_now += Decimal(qty_now) / MICROS * price * multiplier
        if qty_start:
            before = stored_before(conn, instrument, day_start)
            price = before.price if before else _cost_before(conn, key, start)
            value_start += Decimal(qty_start) / MICROS * price * multiplier
    pnl = value_now - value_start - cash_micros / MICROS - Decimal(commission_micros) / MICROS
    return DayLoss(pnl)


def _symbol(conn: sqlite3.Connection, instrument: int) -> str:
    row = conn.execute("SELECT symbol FROM instruments WHERE id = ?", (instrument,)).fetchone()
    return str(row[0]) if row else f"instrument {instrument}"


def _cost_before(conn: sqlite3.Connection, key: tuple[int, int, int], start: str) -> Decimal:
    """The position's average cost before the day began (no mark from before the day)."""
    row = conn.execute(
        "SELECT avg_cost_after_micros FROM position_events WHERE strategy_id = ? "
        "AND account_id = ? AND instrument_id = ? AND event_time < ? "
        "ORDER BY event_time DESC, id DESC LIMIT 1",
        (*key, start),
    ).fetchone()
    return Decimal(row[0] if row else 0) / MICROS


def spec_for(conn: sqlite3.Connection, instrument: int, broker: str) -> InstrumentSpec:
    """The instrument as an adapter needs it (with the broker's own contract id, if known)."""
    row = conn.execute(
        "SELECT i.symbol, i.sec_type, i.exchange, i.currency, i.multiplier_micros, "
        "i.primary_exchange, i.expiry, i.strike_micros, i.option_right, "
        "(SELECT b.broker_contract_id FROM instrument_broker_ids b "
        " WHERE b.instrument_id = i.id AND b.broker = ?) FROM instruments i WHERE i.id = ?",
        (broker, instrument),
    ).fetchone()
    return InstrumentSpec(
        row[0],
        sec_type=row[1],
        exchange=row[2],
        currency=row[3],
        multiplier=Decimal(row[4]) / MICROS,
        primary_exchange=row[5],
        expiry=row[6],
        strike=Decimal(row[7]) / MICROS,
        option_right=row[8],
        broker_contract_id=row[9],
    )


@dataclass(frozen=True)
class Holding:
    strategy: str
    account: str
    instrument_id: int
    qty: Decimal


def holdings(
    conn: sqlite3.Connection, broker: str, *, account: str | None, client: str | None
) -> list[Holding]:
    """Open positions at this broker (and account, when known) of the strategies the client
    traded (every strategy when there is no client)."""
    sql = (
        "SELECT s.name, a.account_code, p.instrument_id, p.qty_micros FROM positions p "
        "JOIN strategies s ON s.id = p.strategy_id JOIN accounts a ON a.id = p.account_id "
        "WHERE p.qty_micros <> 0 AND a.broker = ?"
    )
    args: list[object] = [broker]
    if account:
        sql += " AND a.account_code = ?"
        args.append(account)
    if client:
        sql += (
            " AND p.strategy_id IN (SELECT DISTINCT strategy_id FROM orders "
            "WHERE client_name = ? AND strategy_id IS NOT NULL)"
        )
        args.append(client)
    return [
        Holding(r[0], r[1], r[2], Decimal(r[3]) / MICROS)
        for r in conn.execute(sql + " ORDER BY s.name, p.instrument_id", args)
    ]
