"""The prices an order is judged at: its own limit or stop price, else the broker's latest
price, else the freshest stored mark; a stale one is no price (the order is then refused, and
the reason says why)."""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from quantstrip.brokers.events import InstrumentSpec, OrderRequest
from quantstrip.brokers.marks import is_stale, latest_stored
from quantstrip.brokers.risk import exposure
from quantstrip.settings_models import RiskSettings

if TYPE_CHECKING:
    import sqlite3

    from quantstrip.brokers.base import Broker

log = logging.getLogger("quantstrip.brokers.risk.guard")


def order_price(
    broker: Broker,
    request: OrderRequest,
    conn: sqlite3.Connection | None,
    instrument: int | None,
    now: datetime,
    settings: RiskSettings,
) -> tuple[Decimal | None, str]:
    if request.order_type in ("LMT", "STP LMT"):
        return request.limit_price, "limit price"
    if request.order_type == "STP":
        return request.stop_price, "stop price"
    quote = broker_quote(broker, request.instrument)
    if quote is not None and not is_stale(quote.time, now, settings.marks.max_age_s):
        return quote.price, f"{quote.source} price at {quote.time:%Y-%m-%d %H:%M:%S} UTC"
    if conn is not None and instrument is not None:
        stored = latest_stored(conn, instrument)
        if stored is not None and not is_stale(stored.time, now, settings.marks.max_age_s):
            return stored.price, f"{stored.source} mark at {stored.time:%Y-%m-%d %H:%M:%S} UTC"
        if stored is not None:
            return None, f"the last mark ({stored.time:%Y-%m-%d %H:%M} UTC) is stale"
    return None, "no fresh mark for a market order"


def broker_quote(broker: Broker, instrument: InstrumentSpec) -> Any:
    """The broker's latest price, or None when it has none or asking failed (logged: the
    stored marks are the fallback, and without a fresh one the order is refused)."""
    try:
        return broker.latest_price(instrument)
    except Exception:
        log.warning("no price from %s for %s", broker.name, instrument.symbol, exc_info=True)
        return None


def fresh_price(
    broker: Broker,
    conn: sqlite3.Connection | None,
    instrument_id: int,
    now: datetime,
    settings: RiskSettings,
) -> Decimal | None:
    if conn is None:
        return None
    limit = settings.marks.max_age_s
    quote = broker_quote(broker, exposure.spec_for(conn, instrument_id, broker.name))
    if quote is not None and not is_stale(quote.time, now, limit):
        return quote.price
    stored = latest_stored(conn, instrument_id)
    if stored is not None and not is_stale(stored.time, now, limit):
        return stored.price
    return None
