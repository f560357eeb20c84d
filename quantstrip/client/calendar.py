"""Trading-calendar gate: "run only on sessions of XNYS".

The gate is a trigger wrapper rather than a check inside the job, so the next fire time the
dashboard shows is the real next run (not a run that will be skipped), and the daemon and the
client runner share one definition. `exchange_calendars` is imported lazily: building a calendar
costs about a second, which only clients that ask for a gate should pay.
"""

from __future__ import annotations

import functools
import warnings
from datetime import date, datetime, timedelta
from typing import Any

from apscheduler.triggers.base import BaseTrigger

# A gated trigger looks at most this many days ahead for a session (a year covers any holiday).
MAX_DAYS_AHEAD = 400


@functools.lru_cache(maxsize=16)
def get_calendar(exchange: str) -> Any:
    import exchange_calendars

    try:
        with warnings.catch_warnings():
            # exchange_calendars trips pandas deprecation warnings that are not ours to fix.
            warnings.simplefilter("ignore")
            return exchange_calendars.get_calendar(exchange.upper())
    except Exception as exc:  # InvalidCalendarName and friends
        from quantstrip.errors import ValidationError

        raise ValidationError("calendar", f"unknown exchange calendar {exchange!r}") from exc


def is_session(exchange: str, moment: datetime | date) -> bool:
    """Whether `moment` (its date in the exchange's time zone) is a trading session."""
    cal = get_calendar(exchange)
    if isinstance(moment, datetime):
        day = moment.astimezone(cal.tz).date() if moment.tzinfo else moment.date()
    else:
        day = moment
    import pandas as pd

    label = pd.Timestamp(day)
    if label < cal.first_session or label > cal.last_session:
        return False
    return bool(cal.is_session(label))


class SessionTrigger(BaseTrigger):
    """Fires when `inner` fires, but only on sessions of `exchange`."""

    def __init__(self, inner: BaseTrigger, exchange: str) -> None:
        self.inner = inner
        self.exchange = exchange.upper()
        get_calendar(self.exchange)  # fail early on an unknown exchange

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        cal_tz = get_calendar(self.exchange).tz
        for _ in range(MAX_DAYS_AHEAD * 2):
            candidate = self.inner.get_next_fire_time(previous_fire_time, now)
            if candidate is None:
                return None
            if is_session(self.exchange, candidate):
                return candidate
            # Jump to the start of the next exchange-local day instead of stepping through every
            # fire of a sub-daily trigger across a weekend.
            local = candidate.astimezone(cal_tz)
            next_day = (local + timedelta(days=1)).replace(
                hour=0, minute=0, second=0, microsecond=0
            )
            previous_fire_time, now = None, next_day.astimezone(candidate.tzinfo)
        return None

    def __str__(self) -> str:
        return f"{self.inner} on {self.exchange} sessions"

    def __repr__(self) -> str:
        return f"<SessionTrigger ({self.inner!r}, exchange={self.exchange!r})>"
