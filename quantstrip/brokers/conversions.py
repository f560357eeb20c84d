"""Currency conversions: a fill of a currency pair moves cash, it opens no position.

IB reports a conversion as a fill of a CASH contract (live: symbol EUR, currency CHF; Flex:
symbol EUR.CHF). Stored as two `fx_conversion` cash events, one per currency (broker txn ids
`<exec id>:<currency>`), and its commission as a `fee` cash event (`<exec id>:commission`), in
whichever order the fill and its commission arrive. Nothing reaches positions or realised PnL.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from quantstrip.brokers.events import CommissionEvent, ExecutionEvent
from quantstrip.db.connection import transaction
from quantstrip.db.handler import Database
from quantstrip.db.records import CashEventRecord
from quantstrip.db.units import MICROS, from_micros, to_micros
from quantstrip.db.validate import currency_code, normalise_side
from quantstrip.errors import ConflictError, ValidationError

log = logging.getLogger(__name__)

KIND = "fx_conversion"


def is_conversion(event: ExecutionEvent) -> bool:
    return event.instrument.sec_type.upper() == "CASH"


def _legs(event: ExecutionEvent) -> tuple[tuple[str, Decimal], tuple[str, Decimal]]:
    """(currency bought, signed amount), (currency paid, signed amount); checked up front."""
    symbol = event.instrument.symbol
    parts = symbol.split(".")
    bought = currency_code(parts[0], "symbol")
    paid = currency_code(event.instrument.currency)
    if len(parts) > 2 or (len(parts) == 2 and currency_code(parts[1], "symbol") != paid):
        raise ValidationError(
            "symbol", f"currency pair {symbol!r} does not end in its currency {paid}"
        )
    if bought == paid:
        raise ValidationError("symbol", f"{symbol!r} converts {paid} into itself")
    qty, price = Decimal(str(event.qty)), Decimal(str(event.price))
    if qty <= 0:
        raise ValidationError("qty", f"a conversion needs a positive quantity, got {qty}")
    if price <= 0:
        raise ValidationError("price", f"a conversion needs a positive rate, got {price}")
    sign = 1 if normalise_side(event.side) == "BUY" else -1
    return (bought, sign * qty), (paid, -sign * qty * price)


def _txn_range(exec_id: str) -> tuple[str, str]:
    """Every `<exec id>:<suffix>` id sorts in [exec id + ':', exec id + ';'): an index range."""
    return f"{exec_id}:", f"{exec_id};"


def conversion_time(db: Database, broker: str, exec_id: str) -> tuple[str, str] | None:
    """(account code, time) of a stored conversion with this exec id, else None."""
    low, high = _txn_range(exec_id)
    row = db.conn.execute(
        "SELECT a.account_code, c.event_time FROM cash_events c "
        "JOIN accounts a ON a.id = c.account_id WHERE c.broker = ? "
        "AND c.broker_txn_id >= ? AND c.broker_txn_id < ? AND c.kind = ? LIMIT 1",
        (broker, low, high, KIND),
    ).fetchone()
    return None if row is None else (row[0], row[1])


def record_conversion(db: Database, event: ExecutionEvent) -> list[CashEventRecord]:
    """Both legs in one transaction (all or nothing), and a commission that came first moved
    from the commissions table (where it waited for a fill that will never be one) to a fee."""
    (bought, got), (paid, gave) = _legs(event)
    description = f"{event.side} {event.qty} {bought}.{paid} @ {event.price}"
    rate = event.fx_rate_to_base  # the broker's rate of the paid currency to base
    with transaction(db.conn):
        legs = [
            _once(
                db,
                broker=event.broker,
                account=event.account,
                broker_txn_id=f"{event.exec_id}:{currency}",
                kind=KIND,
                currency=currency,
                amount=amount,
                event_time=event.time,
                fx_rate_to_base=leg_rate,
                description=description,
            )
            for currency, amount, leg_rate in (
                (bought, got, None if rate is None else rate * Decimal(str(event.price))),
                (paid, gave, rate),
            )
        ]
        early = db.conn.execute(
            "SELECT commission_micros, currency FROM commissions WHERE broker = ? "
            "AND exec_id = ? AND execution_id IS NULL",
            (event.broker, event.exec_id),
        ).fetchone()
        if early is not None:
            db.conn.execute(
                "DELETE FROM commissions WHERE broker = ? AND exec_id = ? AND execution_id IS NULL",
                (event.broker, event.exec_id),
            )
            _record_fee(
                db,
                event.broker,
                event.account,
                event.exec_id,
                Decimal(early[0]) / MICROS,
                early[1],
                legs[0].event_time,
            )
    return legs


def record_conversion_fee(
    db: Database, event: CommissionEvent, account: str, when: str
) -> CashEventRecord:
    return _record_fee(
        db, event.broker, account, event.exec_id, event.commission, event.currency, when
    )


def _record_fee(
    db: Database,
    broker: str,
    account: str,
    exec_id: str,
    commission: Decimal,
    currency: str,
    when: str,
) -> CashEventRecord:
    return _once(
        db,
        broker=broker,
        account=account,
        broker_txn_id=f"{exec_id}:commission",
        kind="fee",
        currency=currency,
        amount=-Decimal(str(commission)),
        event_time=when,
        description="commission of a currency conversion",
    )


def _once(db: Database, **fields: Any) -> CashEventRecord:
    """A cash event stored once; a repeat with another amount or currency is a conflict (the
    broker re-sent a different conversion under the same exec id), logged and raised."""
    stored, created = db.record_cash_event(**fields)
    wanted = (fields["currency"], to_micros(fields["amount"], "amount"))
    if not created and (stored.currency, stored.amount_micros) != wanted:
        message = (
            f"{fields['broker']} {stored.kind} {stored.broker_txn_id} is stored as "
            f"{from_micros(stored.amount_micros)} {stored.currency}; a repeat now says "
            f"{fields['amount']} {fields['currency']}: refused (the stored one stands)"
        )
        log.error("conflict: %s", message)
        raise ConflictError(message)
    return stored
