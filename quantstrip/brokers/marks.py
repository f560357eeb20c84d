"""Marks: the latest price of an instrument, with its time and source, that values positions.

A mark comes from a broker (`Broker.latest_price`: SimBroker's last bar, IB snapshot or delayed
data, Alpaca's last trade) and reaches the database as a `MarkEvent` through the recorder, like
every other broker fact. Staleness is decided here and only here: a mark older than
`risk.marks.max_age_s` is stale; pages flag it and the risk guard never values an order with it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from quantstrip import clock
from quantstrip.brokers.events import InstrumentSpec, utc
from quantstrip.db.connection import transaction
from quantstrip.db.units import now_text, parse_utc, to_micros, utc_text


@dataclass(frozen=True)
class MarkEvent:
    """A price observation for valuing positions (not a trade of ours)."""

    broker: str
    instrument: InstrumentSpec
    price: Decimal
    time: datetime
    source: str

    def __post_init__(self) -> None:
        if self.price <= 0:
            raise ValueError(f"mark price must be positive, got {self.price}")
        object.__setattr__(self, "time", utc(self.time))


def max_age_s() -> float:
    from quantstrip import settings

    return settings.platform().risk.marks.max_age_s


def age_s(mark_time: datetime | str, now: datetime | None = None) -> float:
    moment = parse_utc(mark_time) if isinstance(mark_time, str) else utc(mark_time)
    return ((now or clock.now()) - moment).total_seconds()


def is_stale(
    mark_time: datetime | str | None, now: datetime | None = None, limit_s: float | None = None
) -> bool:
    """A missing mark is stale too: there is nothing fresh to use."""
    if mark_time is None:
        return True
    return age_s(mark_time, now) > (max_age_s() if limit_s is None else limit_s)


def describe_age(seconds: float) -> str:
    span = timedelta(seconds=round(max(seconds, 0)))
    if span < timedelta(minutes=2):
        return f"{span.seconds} s"
    if span < timedelta(hours=2):
        return f"{span.seconds // 60} min"
    if span < timedelta(days=2):
        return f"{span.days * 24 + span.seconds // 3600} h"
    return f"{span.days} days"


def store_mark(conn: sqlite3.Connection, instrument_id: int, event: MarkEvent) -> bool:
    """Insert a mark (idempotent per instrument, time and source); True when it was new."""
    with transaction(conn):
        cursor = conn.execute(
            "INSERT OR IGNORE INTO marks (instrument_id, mark_time, price_micros, source, "
            "recorded_at) VALUES (?, ?, ?, ?, ?)",
            (
                instrument_id,
                utc_text(event.time),
                to_micros(event.price, "price"),
                event.source,
                now_text(),
            ),
        )
    return cursor.rowcount > 0


@dataclass(frozen=True)
class StoredMark:
    price: Decimal
    time: datetime
    source: str


def latest_stored(conn: sqlite3.Connection, instrument_id: int) -> StoredMark | None:
    row = conn.execute(
        "SELECT price_micros, mark_time, source FROM marks_latest WHERE instrument_id = ?",
        (instrument_id,),
    ).fetchone()
    if row is None:
        return None
    return StoredMark(Decimal(row[0]) / 1_000_000, parse_utc(row[1]), row[2])


def stored_before(
    conn: sqlite3.Connection, instrument_id: int, moment: datetime
) -> StoredMark | None:
    """The last mark strictly before `moment` (the previous close, for the day's PnL)."""
    row = conn.execute(
        "SELECT price_micros, mark_time, source FROM marks WHERE instrument_id = ? "
        "AND mark_time < ? ORDER BY mark_time DESC LIMIT 1",
        (instrument_id, utc_text(moment)),
    ).fetchone()
    if row is None:
        return None
    return StoredMark(Decimal(row[0]) / 1_000_000, parse_utc(row[1]), row[2])
