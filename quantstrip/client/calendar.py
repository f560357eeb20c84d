"""Trading-calendar gate: "run only on sessions of XNYS".

The gate is a trigger wrapper rather than a check inside the job, so the next fire time the
dashboard shows is the real next run (not a run that will be skipped), and the daemon and the
client runner share one definition. `exchange_calendars` is imported lazily: building a calendar
costs about a second, which only clients that ask for a gate should pay.

An `exchange_calendars` calendar knows sessions only between the bounds it was built with, and
its default bounds are fixed when the library is imported (20 years back, 1 year ahead). A
daemon that ran for a year would find no session ahead and its gated jobs would go quiet for
good. So calendars here are built for an explicit window and rebuilt, wider, whenever a date
is asked for that the window does not cover with MAX_DAYS_AHEAD to spare.
"""

from __future__ import annotations

import threading
import warnings
from datetime import date, datetime, timedelta
from typing import Any

from apscheduler.triggers.base import BaseTrigger

from quantstrip import clock
from quantstrip.errors import ValidationError

# A gated trigger looks at most this many days ahead for a session (a year covers any holiday).
MAX_DAYS_AHEAD = 400
# A (re)built calendar covers this much before and after the date that asked for it.
WINDOW_BEFORE = timedelta(days=366)
WINDOW_AFTER = timedelta(days=3 * 366)

_calendars: dict[str, Any] = {}
_lock = threading.Lock()


def _build(exchange: str, start: date, end: date) -> Any:
    """The calendar for [start, end], clipped to the years the calendar class can know."""
    import exchange_calendars
    import pandas as pd

    dispatcher = exchange_calendars.calendar_utils.global_calendar_dispatcher
    try:
        cal_cls = dispatcher._calendar_factories[dispatcher.resolve_alias(exchange)]
    except (KeyError, exchange_calendars.errors.CalendarError):
        raise ValidationError("calendar", f"unknown exchange calendar {exchange!r}") from None
    first, last = pd.Timestamp(start), pd.Timestamp(end)
    if cal_cls.bound_min() is not None:
        first = max(first, cal_cls.bound_min())
    if cal_cls.bound_max() is not None:
        last = min(last, cal_cls.bound_max())
    with warnings.catch_warnings():
        # exchange_calendars trips pandas deprecation warnings that are not ours to fix.
        warnings.simplefilter("ignore")
        return exchange_calendars.get_calendar(exchange, start=first, end=last)


def get_calendar(exchange: str, covering: date | None = None) -> Any:
    """The exchange's calendar, covering `covering` (today by default) and MAX_DAYS_AHEAD
    after it: built on first use, rebuilt wider when a later (or earlier) date asks."""
    exchange = exchange.upper()
    day = covering or clock.today()
    with _lock:
        cal = _calendars.get(exchange)
        if cal is not None and _covers(cal, day):
            return cal
        start, end = day - WINDOW_BEFORE, day + WINDOW_AFTER
        if cal is not None:  # keep what was covered: widen, never move, the window
            start = min(start, cal.first_session.date())
            end = max(end, cal.last_session.date())
        cal = _build(exchange, start, end)
        _calendars[exchange] = cal
        return cal


def _covers(cal: Any, day: date) -> bool:
    """Whether `cal` answers for `day` and MAX_DAYS_AHEAD after it, or is as wide as its
    class can ever be (then a wider build would not help)."""
    low, high = cal.bound_min(), cal.bound_max()
    starts = cal.first_session.date() <= day or (
        low is not None and cal.first_session <= low + timedelta(days=10)
    )
    ends = day + timedelta(days=MAX_DAYS_AHEAD) <= cal.last_session.date() or (
        high is not None and cal.last_session >= high - timedelta(days=10)
    )
    return starts and ends


def calendar_zone(exchange: str) -> Any:
    """The exchange's own time zone (XNYS: America/New_York)."""
    return get_calendar(exchange).tz


def _exchange_day(exchange: str, moment: datetime | date) -> date:
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            return moment.date()
        return moment.astimezone(calendar_zone(exchange)).date()
    return moment


def is_session(exchange: str, moment: datetime | date) -> bool:
    """Whether `moment` (its date in the exchange's time zone) is a trading session.

    A date outside what the calendar can know (before its first or after its last possible
    session, e.g. a lunar-calendar exchange's published years) raises, rather than answering
    "no session" and silencing a schedule."""
    import pandas as pd

    day = _exchange_day(exchange, moment)
    cal = get_calendar(exchange, covering=day)
    label = pd.Timestamp(day)
    if not cal.first_session <= label <= cal.last_session:
        raise ValidationError(
            "calendar",
            f"{exchange} sessions are known from {cal.first_session.date()} to "
            f"{cal.last_session.date()}, not on {day}",
        )
    return bool(cal.is_session(label))


class SessionTrigger(BaseTrigger):
    """Fires when `inner` fires, but only on sessions of `exchange` (the fire time's date in
    the exchange's zone, whatever zone `inner` counts in)."""

    def __init__(self, inner: BaseTrigger, exchange: str) -> None:
        self.inner = inner
        self.exchange = exchange.upper()
        get_calendar(self.exchange)  # fail early on an unknown exchange

    @property
    def timezone(self) -> Any:
        return getattr(self.inner, "timezone", None)

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        cal_tz = calendar_zone(self.exchange)
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
