"""Slot arithmetic: the APScheduler triggers behind every schedule phrase, and the slots between
two moments.

A *slot* is a fire time that every process computes identically from the schedule alone: the
daemon claims a notebook run by its slot (UNIQUE (client_name, scheduled_for)), so a slot that
moved by a microsecond after a restart would run twice, and one that moved by a day would be
skipped. The rules:

- Everything is computed in the schedule's zone on the wall clock, never from the moment the
  process started (APScheduler's IntervalTrigger without a start date is anchored to "now").
- An interval that divides a day ("every 5 minutes", "every 4 hours", "every 90 minutes") is a
  set of wall-clock times of day counted from local midnight: 00:00, 00:05...; 00:00, 04:00...
  They are expressed as APScheduler CronTriggers, so DST is handled by APScheduler's wall-clock
  logic. Other intervals ("every 7 minutes", "every 5 hours") count elapsed time from local
  midnight of Monday 3 January 2000 in the zone.
- "every N days" fires on local dates N days apart counted from 3 January 2000 ("every N weeks"
  is every 7N days, so weeks start on Mondays).
- DST, as cron does it: a wall time that does not exist (02:30 on the spring-forward day in New
  York) fires once, at the moment the clock jumps past it; a wall time that happens twice (01:30
  on the fall-back day) fires once, the first time, unless the schedule fires every hour
  (hour field `*`), which keeps firing in real time through the repeated hour.
- Cron text is read by croniter (crontab semantics: Sunday is 0 or 7, names, steps, `L`,
  `5#2`, and day-of-month OR day-of-week when both are restricted), then built as
  APScheduler triggers, whose own day-of-week numbering starts at Monday.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from quantstrip.errors import ValidationError

# Monday 3 January 2000: the day every anchored interval counts from, in the schedule's zone.
EPOCH_DATE = date(2000, 1, 3)
DAY_S = 86_400
UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3_600, "days": DAY_S, "weeks": 7 * DAY_S}
# A day's slot set larger than this many cron triggers is counted as elapsed time instead.
MAX_CRON_GROUPS = 32
# missed_slots counts at most this many slots (five hours of an every-second schedule) before
# it jumps to the end of the window for the latest ones.
MAX_SLOT_STEPS = 20_000
_HOUR_FIELD = 5  # CronTrigger.fields: year, month, day, week, day_of_week, hour, minute, second
_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NTH = {1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 5: "5th"}


def _local_midnight(day: date, tz: tzinfo) -> datetime:
    """The first instant of `day` in `tz` (midnight itself may not exist on a DST day)."""
    naive = datetime.combine(day, time())
    aware = naive.replace(tzinfo=tz)
    return datetime.fromtimestamp(aware.timestamp(), tz)


def _is_repeat(moment: datetime, tz: tzinfo) -> bool:
    """Whether `moment` is the second occurrence of its wall time (the fall-back hour)."""
    local = moment.astimezone(tz)
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


class WallClockCron(CronTrigger):
    """APScheduler's CronTrigger, firing a fixed wall time once on a fall-back day.

    CronTrigger alone fires "01:30 every day" twice on the day the clock goes back (01:30 EDT
    and 01:30 EST). A schedule with a `*` hour field fires every hour and keeps doing so through
    the repeated hour, as cron does. Fire times are normalised (02:30 on the spring-forward day
    is returned as 03:30 EDT, the instant APScheduler means by it).
    """

    def get_next_fire_time(self, previous_fire_time: Any, now: datetime) -> datetime | None:
        every_hour = str(self.fields[_HOUR_FIELD]) == "*"
        for _ in range(8):  # one repeated hour per day: a few steps always reach a real fire
            fire = super().get_next_fire_time(previous_fire_time, now)
            if fire is None:
                return None
            fire = datetime.fromtimestamp(fire.timestamp(), self.timezone)
            if every_hour or not _is_repeat(fire, self.timezone):
                return fire
            previous_fire_time = now = fire
        return None  # pragma: no cover - unreachable: a day has one repeated hour


class EveryNDays(BaseTrigger):
    """`inner` (a daily wall-clock trigger) kept only on local dates `n` days apart, counted
    from EPOCH_DATE, so every process agrees which dates are slot dates."""

    def __init__(self, inner: BaseTrigger, n: int, tz: tzinfo) -> None:
        self.inner, self.n, self.timezone = inner, n, tz

    def get_next_fire_time(self, previous_fire_time: Any, now: datetime) -> datetime | None:
        for _ in range(4):  # at most one jump to the next slot date, then a DST-safe retry
            fire = self.inner.get_next_fire_time(previous_fire_time, now)
            if fire is None:
                return None
            local_day = fire.astimezone(self.timezone).date()
            behind = (local_day - EPOCH_DATE).days % self.n
            if behind == 0:
                return fire
            slot_day = local_day + timedelta(days=self.n - behind)
            previous_fire_time, now = None, _local_midnight(slot_day, self.timezone)
        return None  # pragma: no cover - a daily trigger always fires on the slot date

    def __str__(self) -> str:
        return f"every {self.n} days: {self.inner}"

    def __repr__(self) -> str:
        return f"<EveryNDays (n={self.n}, inner={self.inner!r})>"


def _any(triggers: list[BaseTrigger]) -> BaseTrigger:
    return triggers[0] if len(triggers) == 1 else OrTrigger(triggers)


def _field(values: set[int], full: int) -> str:
    return "*" if len(values) == full else ",".join(str(v) for v in sorted(values))


def _times_of_day_trigger(length_s: int, offset_s: int, tz: tzinfo) -> BaseTrigger | None:
    """The wall-clock times {offset + k*length} of every day, as few CronTriggers as possible;
    None when that takes too many (then the caller counts elapsed time instead)."""
    by_minute_second: dict[tuple[int, int], set[int]] = defaultdict(set)
    for t in range(offset_s, DAY_S, length_s):
        by_minute_second[(t // 60 % 60, t % 60)].add(t // 3600)
    by_hours_second: dict[tuple[str, int], set[int]] = defaultdict(set)
    for (minute, second), hours in by_minute_second.items():
        by_hours_second[(_field(hours, 24), second)].add(minute)
    by_hours_minutes: dict[tuple[str, str], set[int]] = defaultdict(set)
    for (hours, second), minutes in by_hours_second.items():
        by_hours_minutes[(hours, _field(minutes, 60))].add(second)
    if len(by_hours_minutes) > MAX_CRON_GROUPS:
        return None
    return _any(
        [
            WallClockCron(hour=hours, minute=minutes, second=_field(seconds, 60), timezone=tz)
            for (hours, minutes), seconds in sorted(by_hours_minutes.items())
        ]
    )


def interval_trigger(unit: str, n: int, tz: tzinfo, offset_s: int = 0) -> BaseTrigger:
    """Every `n` `unit`s (seconds, minutes, hours, days, weeks) in `tz`, anchored to the
    calendar; `offset_s` shifts the slots (every hour at :15 is offset 900 s)."""
    length = n * UNIT_SECONDS[unit]
    if unit in ("days", "weeks"):
        hour, rest = divmod(offset_s, 3600)
        daily = WallClockCron(hour=hour, minute=rest // 60, second=rest % 60, timezone=tz)
        days = length // DAY_S
        return daily if days == 1 else EveryNDays(daily, days, tz)
    if DAY_S % length == 0 and offset_s < length:
        trigger = _times_of_day_trigger(length, offset_s, tz)
        if trigger is not None:
            return trigger
    start = _local_midnight(EPOCH_DATE, tz) + timedelta(seconds=offset_s)
    return IntervalTrigger(seconds=length, start_date=start, timezone=tz)


def daily_trigger(hour: int, minute: int, second: int, tz: tzinfo, weekdays: str = "*") -> Any:
    """A wall time on the given APScheduler weekday names ('mon-fri', 'sat'...)."""
    return WallClockCron(day_of_week=weekdays, hour=hour, minute=minute, second=second, timezone=tz)


def cron_trigger(expr: str, tz: tzinfo) -> BaseTrigger:
    """A 5-field crontab string read with croniter's crontab semantics, as APScheduler triggers.

    When both day of month and day of week are restricted, crontab fires on either (e.g.
    "0 9 1 * 1": the 1st of the month and every Monday); APScheduler alone would need both.
    """
    from croniter import croniter
    from croniter.croniter import CroniterError

    fields = expr.split()
    if len(fields) != 5:
        raise ValidationError("schedule", f"expected 5 cron fields (m h dom mon dow), got {expr!r}")
    try:
        (minutes, hours, days, months, weekdays), nth = croniter.expand(expr)
    except (CroniterError, ValueError) as exc:
        raise ValidationError("schedule", f"invalid cron string {expr!r}: {exc}") from None

    def text(values: list[Any]) -> str:
        return ",".join("last" if v == "l" else str(v) for v in values)

    day_names = ",".join(_DOW_NAMES[int(d) % 7] for d in weekdays if d != "*") or "*"
    common = {"minute": text(minutes), "hour": text(hours), "month": text(months)}
    if nth:
        if days != ["*"]:
            raise ValidationError("schedule", f"{expr!r}: '#' with a day of month is ambiguous")
        nth_days = [f"{_NTH[k]} {_DOW_NAMES[d % 7]}" for d, ks in nth.items() for k in sorted(ks)]
        plain = [_DOW_NAMES[int(d) % 7] for d in weekdays if d != "*" and d not in nth]
        specs = [{"day": ",".join(nth_days)}]
        if plain:
            specs.append({"day_of_week": ",".join(plain)})
    elif days != ["*"] and weekdays != ["*"]:
        specs = [{"day": text(days)}, {"day_of_week": day_names}]  # crontab: either matches
    else:
        specs = [{"day": text(days), "day_of_week": day_names}]
    try:
        return _any([WallClockCron(**common, **spec, timezone=tz) for spec in specs])
    except ValueError as exc:
        raise ValidationError("schedule", f"invalid cron string {expr!r}: {exc}") from None


@dataclass(frozen=True)
class Slots:
    """The slots of a trigger in a window. `slots` are the latest `limit` of them, oldest first;
    `total` counts them (a lower bound, `complete` False, when there were too many to count)."""

    slots: tuple[datetime, ...]
    total: int
    complete: bool = True

    @property
    def latest(self) -> datetime | None:
        return self.slots[-1] if self.slots else None


def missed_slots(
    trigger: BaseTrigger,
    since: datetime,
    until: datetime,
    limit: int = 100,
    max_steps: int = MAX_SLOT_STEPS,
) -> Slots:
    """The fire times of `trigger` after `since` and up to `until` included: the slots a
    process that was down from `since` to `until` did not run. Pure: it reads no clock.

    A catch-up policy picks from them: skip (none), run once (`latest`), run all (`slots`,
    bounded by `limit` so a long outage of an every-minute schedule cannot flood the runs).
    """
    if since.tzinfo is None or until.tzinfo is None:
        raise ValidationError("since", "missed_slots needs time-zone-aware moments")
    if limit < 1:
        raise ValidationError("limit", f"must be at least 1, got {limit}")
    kept: deque[datetime] = deque(maxlen=limit)
    total = 0
    # Compared as instants: two datetimes sharing a tzinfo compare by wall time, which puts
    # 01:10 EST (the repeated hour) before 01:50 EDT.
    end = until.timestamp()
    first = fire = trigger.get_next_fire_time(None, since + timedelta(microseconds=1))
    while fire is not None and fire.timestamp() <= end:
        if total >= max_steps and first is not None:
            # Too many to count: the latest ones lie near `until`; walk only that tail.
            spacing = (fire - first) / total
            tail_since = max(fire, until - spacing * limit * 2)
            tail = missed_slots(trigger, tail_since, until, limit, max_steps)
            return Slots(tail.slots, total + tail.total, complete=False)
        kept.append(fire)
        total += 1
        fire = trigger.get_next_fire_time(fire, fire)
    return Slots(tuple(kept), total)
