"""The fluent scheduler clients use: `self.scheduler.every().day.at("16:00").do(self.job)`.

Every phrase is turned into an APScheduler 3 trigger with an explicit time zone (APScheduler
otherwise takes the machine's local zone, which differs between a laptop and a server). The same
builder parses the registry's schedule strings ("every day at 16:00", "every 5 minutes", cron),
so notebook and module clients mean the same thing by the same words.

Pitfalls handled here (the slot rules themselves are in `quantstrip.client.slots`):
- Every schedule is anchored to the calendar in its zone ("every 5 minutes" fires at :00, :05...;
  "every 2 days" at local midnight of fixed dates), never to the moment the process started, so
  a slot has the same time whichever process computes it, before or after a restart: that is what
  lets client_runs' unique slot index prevent a rerun or a skip.
- A session-gated job (`.on_sessions("XNYS")`) counts its times in the exchange's zone unless
  the job names a zone itself: "16:00 on NYSE sessions" is the NYSE close all year round,
  whatever the server's or the scheduler's zone.
- Cron text is read with croniter's crontab semantics (Sunday is 0 or 7, "1-5" is Monday to
  Friday; APScheduler 3 alone would read it from Monday=0).
- The default misfire grace (1 s) silently skips a run when the process was busy for a second.
  Jobs get `misfire_grace_s` (default 60 s), `coalesce=True` (a backlog runs once) and
  `max_instances=1` (a slow job is never stacked on itself).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger

from quantstrip import clock
from quantstrip.client import slots
from quantstrip.client.calendar import SessionTrigger, calendar_zone
from quantstrip.client.slots import Slots, missed_slots
from quantstrip.errors import ValidationError

__all__ = ["JobBuilder", "ScheduledJob", "Scheduler", "Slots", "missed_slots", "parse_schedule"]

DEFAULT_MISFIRE_GRACE_S = 60
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
UNITS = {
    "second": "seconds",
    "seconds": "seconds",
    "minute": "minutes",
    "minutes": "minutes",
    "hour": "hours",
    "hours": "hours",
    "day": "days",
    "days": "days",
    "week": "weeks",
    "weeks": "weeks",
}
_CRON_FIELD = re.compile(r"^[0-9*/,\-A-Za-z?#]+$")


def zone(tz: str | tzinfo | None) -> tzinfo:
    """A tzinfo from a name; UTC when none is given (never the machine's local zone)."""
    if tz is None:
        return ZoneInfo("UTC")
    if isinstance(tz, tzinfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError("tz", f"unknown time zone {tz!r}") from None


def _parse_clock(text: str) -> tuple[int | None, int | None, int]:
    """'HH:MM', 'HH:MM:SS', ':MM' (minute of the hour) or ':SS' -> (hour, minute, second)."""
    match = re.fullmatch(r"(\d{1,2})?:(\d{2})(?::(\d{2}))?", text.strip())
    if not match:
        raise ValidationError("at", f"expected HH:MM, HH:MM:SS or :MM, got {text!r}")
    hour = int(match.group(1)) if match.group(1) is not None else None
    minute = int(match.group(2))
    second = int(match.group(3) or 0)
    if (hour is not None and hour > 23) or minute > 59 or second > 59:
        raise ValidationError("at", f"not a time of day: {text!r}")
    return hour, minute, second


def cron_trigger(expr: str, tz: str | tzinfo | None = None) -> BaseTrigger:
    """A 5-field crontab string (m h dom mon dow) in `tz` (UTC when none is given)."""
    fields = expr.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValidationError("schedule", f"expected 5 cron fields (m h dom mon dow), got {expr!r}")
    return slots.cron_trigger(expr, zone(tz))


@dataclass
class ScheduledJob:
    """One registered job: what to call and when. `aps_job` is set once the scheduler runs."""

    name: str
    func: Callable[..., Any]
    trigger: BaseTrigger
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    misfire_grace_s: int = DEFAULT_MISFIRE_GRACE_S
    aps_job: Any = None

    def next_run(self) -> datetime | None:
        if self.aps_job is not None:
            return self.aps_job.next_run_time
        now = clock.now()
        return self.trigger.get_next_fire_time(None, now)


class JobBuilder:
    """The phrase being built: `every(5).minutes`, `every().monday.at("09:30", tz=...)`."""

    def __init__(self, scheduler: Scheduler | None, interval: int = 1) -> None:
        if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
            raise ValidationError("every", f"interval must be a positive integer, got {interval!r}")
        self._scheduler = scheduler
        self.interval = interval
        self.unit: str | None = None
        self.weekday: str | None = None
        self.at_time: tuple[int | None, int | None, int] | None = None
        # The zone the job's times are in: its own (.at(tz=), .in_tz()), else the exchange's
        # for a session-gated job, else the scheduler's (UTC unless the client set one).
        self.default_tz: tzinfo = scheduler.tz if scheduler else zone(None)
        self.job_tz: tzinfo | None = None
        self.cron_expr: str | None = None
        self.exchange: str | None = None

    @property
    def tz(self) -> tzinfo:
        if self.job_tz is not None:
            return self.job_tz
        if self.exchange is not None:
            return calendar_zone(self.exchange)
        return self.default_tz

    # ---- units ---------------------------------------------------------------------------
    def _unit(self, unit: str) -> JobBuilder:
        if self.unit or self.weekday or self.cron_expr:
            raise ValidationError("every", "a schedule takes one unit")
        self.unit = unit
        return self

    def _day(self, day: str) -> JobBuilder:
        if self.interval != 1:
            raise ValidationError("every", f"every({self.interval}).{day} is ambiguous")
        if self.unit or self.weekday or self.cron_expr:
            raise ValidationError("every", "a schedule takes one unit")
        self.weekday = day
        return self

    second = property(lambda self: self._unit("seconds"))
    seconds = property(lambda self: self._unit("seconds"))
    minute = property(lambda self: self._unit("minutes"))
    minutes = property(lambda self: self._unit("minutes"))
    hour = property(lambda self: self._unit("hours"))
    hours = property(lambda self: self._unit("hours"))
    day = property(lambda self: self._unit("days"))
    days = property(lambda self: self._unit("days"))
    week = property(lambda self: self._unit("weeks"))
    weeks = property(lambda self: self._unit("weeks"))
    monday = property(lambda self: self._day("mon"))
    tuesday = property(lambda self: self._day("tue"))
    wednesday = property(lambda self: self._day("wed"))
    thursday = property(lambda self: self._day("thu"))
    friday = property(lambda self: self._day("fri"))
    saturday = property(lambda self: self._day("sat"))
    sunday = property(lambda self: self._day("sun"))

    @property
    def weekdays(self) -> JobBuilder:
        """Monday to Friday (calendar holidays are the job of `.on_sessions`)."""
        return self._day("mon-fri")

    # ---- modifiers -----------------------------------------------------------------------
    def at(self, time_text: str, tz: str | tzinfo | None = None) -> JobBuilder:
        """Time of day ('16:00'), of the hour (':30') or of the minute (':15' with .minute)."""
        hour, minute, second = _parse_clock(time_text)
        unit = self.unit
        if self.weekday or unit == "days":
            if hour is None:
                raise ValidationError("at", f"a daily time needs HH:MM, got {time_text!r}")
        elif unit == "hours":
            if hour is not None:
                raise ValidationError("at", f"an hourly job takes ':MM', got {time_text!r}")
        elif unit == "minutes":
            if hour is not None:
                raise ValidationError("at", f"a per-minute job takes ':SS', got {time_text!r}")
            # ':15' means second 15 of every minute.
            minute, second = None, int(time_text.strip().lstrip(":")[:2])
        else:
            raise ValidationError("at", f".at() needs .day, .hour, .minute or a weekday ({unit})")
        self.at_time = (hour, minute, second)
        if tz is not None:
            self.job_tz = zone(tz)
        return self

    def in_tz(self, tz: str | tzinfo) -> JobBuilder:
        self.job_tz = zone(tz)
        return self

    def on_sessions(self, exchange: str) -> JobBuilder:
        """Run only on trading sessions of `exchange` (an exchange_calendars code, e.g. XNYS).
        Unless the job names its own zone, its times are then the exchange's local times."""
        self.exchange = exchange.upper()
        calendar_zone(self.exchange)  # fail here on an unknown exchange
        return self

    # ---- result --------------------------------------------------------------------------
    def trigger(self) -> BaseTrigger:
        base = self._base_trigger()
        return SessionTrigger(base, self.exchange) if self.exchange else base

    def _base_trigger(self) -> BaseTrigger:
        tz, n = self.tz, self.interval
        if self.cron_expr:
            return cron_trigger(self.cron_expr, tz)
        if self.weekday:
            hour, minute, second = self.at_time or (0, 0, 0)
            return slots.daily_trigger(hour or 0, minute or 0, second, tz, self.weekday)
        if self.unit is None:
            raise ValidationError("every", "missing unit: e.g. every().day or every(5).minutes")
        hour, minute, second = self.at_time or (0, 0, 0)
        offset = (hour or 0) * 3600 + (minute or 0) * 60 + second
        return slots.interval_trigger(self.unit, n, tz, offset)

    def do(
        self,
        func: Callable[..., Any],
        *args: Any,
        misfire_grace_s: int = DEFAULT_MISFIRE_GRACE_S,
        **kwargs: Any,
    ) -> ScheduledJob:
        if self._scheduler is None:
            raise ValidationError("do", "this schedule is not attached to a scheduler")
        return self._scheduler.add(
            ScheduledJob(
                name=getattr(func, "__name__", repr(func)),
                func=func,
                trigger=self.trigger(),
                args=args,
                kwargs=kwargs,
                misfire_grace_s=misfire_grace_s,
            )
        )


class Scheduler:
    """A client's jobs, run by an APScheduler BackgroundScheduler once the client starts.

    `wrap(func, job_name)` lets the owner (ClientBase) put error handling and job-duration
    tracking around every job without the job author doing anything.
    """

    def __init__(
        self,
        tz: str | tzinfo | None = None,
        wrap: Callable[[Callable[..., Any], str], Callable[..., Any]] | None = None,
    ) -> None:
        self.tz = zone(tz)
        self.jobs: list[ScheduledJob] = []
        self._wrap = wrap
        self._aps: BackgroundScheduler | None = None

    def every(self, interval: int = 1) -> JobBuilder:
        return JobBuilder(self, interval)

    def cron(self, expr: str, tz: str | tzinfo | None = None) -> JobBuilder:
        builder = JobBuilder(self)
        builder.cron_expr = expr
        if tz is not None:
            builder.job_tz = zone(tz)
        builder.trigger()  # validate now, where the author wrote it
        return builder

    def add(self, job: ScheduledJob) -> ScheduledJob:
        self.jobs.append(job)
        if self._aps is not None:
            self._add_to_aps(job)
        return job

    def _add_to_aps(self, job: ScheduledJob) -> None:
        assert self._aps is not None
        func = self._wrap(job.func, job.name) if self._wrap else job.func
        job.aps_job = self._aps.add_job(
            func,
            trigger=job.trigger,
            args=job.args,
            kwargs=job.kwargs,
            name=job.name,
            misfire_grace_time=job.misfire_grace_s,
            coalesce=True,
            max_instances=1,
        )

    @property
    def running(self) -> bool:
        return self._aps is not None and self._aps.running

    def start(self) -> None:
        if self._aps is not None:
            return
        self._aps = BackgroundScheduler(timezone=self.tz)
        for job in self.jobs:
            self._add_to_aps(job)
        self._aps.start()

    def shutdown(self) -> None:
        """Stop firing; running jobs are not waited for (the runner exits right after)."""
        if self._aps is not None and self._aps.running:
            self._aps.shutdown(wait=False)

    def next_run(self) -> datetime | None:
        times = [t for t in (job.next_run() for job in self.jobs) if t is not None]
        return min(times) if times else None

    def run_all_now(self) -> None:
        """Fire every job once now (the daemon's run-now), keeping their schedules."""
        if self._aps is None:
            return
        now = clock.now(self.tz)
        for job in self.jobs:
            if job.aps_job is not None:
                job.aps_job.modify(next_run_time=now)


def parse_schedule(
    text: str, tz: str | tzinfo | None = None, calendar: str | None = None
) -> BaseTrigger:
    """A registry schedule string -> trigger. Accepts cron ("30 9 * * 1-5") or phrases:
    "every day at 16:00", "every 5 minutes", "every monday at 09:30", "every weekday at 16:05",
    "every hour at :15". With `calendar` (an exchange code) the trigger fires on its sessions
    only, and without `tz` its times are the exchange's local times."""
    words = text.strip().lower().split()
    if not words:
        raise ValidationError("schedule", "is empty")
    builder = JobBuilder(None)
    if words[0] != "every":
        builder.cron_expr = text.strip()
    else:
        rest = words[1:]
        try:
            if rest and rest[0].isdigit():
                builder = JobBuilder(None, int(rest[0]))
                rest = rest[1:]
            if not rest:
                raise ValidationError("schedule", f"missing unit in {text!r}")
            unit = rest[0]
            if unit in UNITS:
                builder._unit(UNITS[unit])
            elif unit.rstrip("s") in WEEKDAYS:
                builder._day(unit[:3])
            elif unit in ("weekday", "weekdays"):
                builder._day("mon-fri")
            else:
                raise ValidationError("schedule", f"unknown unit {unit!r} in {text!r}")
            rest = rest[1:]
            if rest[:1] == ["at"] and len(rest) == 2:
                builder.at(rest[1])
            elif rest:
                raise ValidationError("schedule", f"cannot parse {' '.join(rest)!r} in {text!r}")
        except ValidationError as exc:
            if exc.field == "schedule":
                raise
            raise ValidationError("schedule", f"{exc.problem} (in {text!r})") from None
    if tz is not None:
        builder.job_tz = zone(tz)
    if calendar:
        builder.on_sessions(calendar)
    return builder.trigger()
