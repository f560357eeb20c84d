"""The fluent scheduler and registry schedule strings map onto the right APScheduler triggers."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from quantstrip.client.calendar import SessionTrigger, is_session
from quantstrip.client.schedule import Scheduler, parse_schedule
from quantstrip.errors import ValidationError

NY = ZoneInfo("America/New_York")
UTC = ZoneInfo("UTC")
# Tuesday 24 November 2026, 12:00 UTC (07:00 in New York); Thursday 26th is Thanksgiving.
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def next_fires(trigger, count: int = 3, now: datetime = NOW) -> list[datetime]:
    out, previous = [], None
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now if previous is None else previous)
        out.append(fire)
        previous = fire
    return out


def job() -> None:
    pass


def test_every_day_at_uses_the_given_time_zone() -> None:
    s = Scheduler()
    scheduled = s.every().day.at("16:00", tz="America/New_York").do(job)
    assert isinstance(scheduled.trigger, CronTrigger)
    fires = next_fires(scheduled.trigger, 2)
    assert fires[0] == datetime(2026, 11, 24, 16, 0, tzinfo=NY)
    assert fires[1] == datetime(2026, 11, 25, 16, 0, tzinfo=NY)
    assert s.jobs == [scheduled] and scheduled.name == "job"


def test_default_time_zone_is_utc_not_the_machine_zone() -> None:
    trigger = Scheduler().every().day.at("16:00").do(job).trigger
    assert next_fires(trigger, 1)[0] == datetime(2026, 11, 24, 16, 0, tzinfo=UTC)


def test_every_n_seconds_minutes_hours_are_intervals() -> None:
    s = Scheduler()
    assert s.every(5).minutes.do(job).trigger.interval.total_seconds() == 300
    assert s.every().second.do(job).trigger.interval.total_seconds() == 1
    assert s.every(2).hours.do(job).trigger.interval.total_seconds() == 7200


def test_weekday_and_hourly_phrases() -> None:
    s = Scheduler(tz="America/New_York")
    monday = s.every().monday.at("09:30").do(job).trigger
    assert next_fires(monday, 1)[0] == datetime(2026, 11, 30, 9, 30, tzinfo=NY)
    hourly = s.every().hour.at(":15").do(job).trigger
    assert next_fires(hourly, 2) == [
        datetime(2026, 11, 24, 7, 15, tzinfo=NY),
        datetime(2026, 11, 24, 8, 15, tzinfo=NY),
    ]
    per_minute = s.every().minute.at(":30").do(job).trigger
    assert next_fires(per_minute, 1)[0] == datetime(2026, 11, 24, 7, 0, 30, tzinfo=NY)


def test_cron_weekdays_follow_crontab_numbering_not_apschedulers() -> None:
    # APScheduler 3 reads day_of_week 1-5 as Tuesday-Saturday; crontab means Monday-Friday.
    trigger = Scheduler().cron("30 9 * * 1-5", tz="America/New_York").do(job).trigger
    fires = next_fires(trigger, 5, datetime(2026, 11, 28, 12, tzinfo=UTC))  # a Saturday
    assert [f.strftime("%a %H:%M") for f in fires] == [
        "Mon 09:30",
        "Tue 09:30",
        "Wed 09:30",
        "Thu 09:30",
        "Fri 09:30",
    ]
    sunday = parse_schedule("0 12 * * 0", "UTC")
    assert next_fires(sunday, 1)[0].strftime("%a") == "Sun"
    assert next_fires(parse_schedule("0 12 * * 7"), 1)[0].strftime("%a") == "Sun"


def test_session_gate_skips_weekends_and_exchange_holidays() -> None:
    assert is_session("XNYS", datetime(2026, 11, 25, 15, tzinfo=UTC))
    assert not is_session("XNYS", datetime(2026, 11, 26, 15, tzinfo=UTC))  # Thanksgiving
    trigger = (
        Scheduler().every().day.at("16:05", tz="America/New_York").on_sessions("XNYS").do(job)
    ).trigger
    assert isinstance(trigger, SessionTrigger)
    fires = next_fires(trigger, 4)
    assert [f.date().isoformat() for f in fires] == [
        "2026-11-24",
        "2026-11-25",
        "2026-11-27",  # skips Thanksgiving
        "2026-11-30",  # skips the weekend
    ]
    # A sub-daily gated job jumps over the weekend instead of stepping through it.
    # The interval is anchored explicitly: one with no start date is anchored to the real "now".
    anchor = datetime(2026, 11, 2, tzinfo=NY)
    every_minute = SessionTrigger(
        IntervalTrigger(minutes=1, start_date=anchor, timezone=NY), "XNYS"
    )
    saturday = datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert every_minute.get_next_fire_time(None, saturday).date().isoformat() == "2026-11-30"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("every day at 16:00", CronTrigger),
        ("every 5 minutes", IntervalTrigger),
        ("every monday at 09:30", CronTrigger),
        ("every weekday at 16:05", CronTrigger),
        ("every hour at :15", CronTrigger),
        ("30 9 * * 1-5", CronTrigger),
    ],
)
def test_registry_schedule_strings(text: str, kind: type) -> None:
    assert isinstance(parse_schedule(text, "America/New_York"), kind)


def test_registry_intervals_are_aligned_so_slots_survive_restarts() -> None:
    trigger = parse_schedule("every 5 minutes")
    first = trigger.get_next_fire_time(None, NOW.replace(minute=2, second=7))
    assert first == datetime(2026, 11, 24, 12, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda s: s.every().day.at("25:00"), "at"),
        (lambda s: s.every().day.at("4pm"), "at"),
        (lambda s: s.every().hour.at("10:15"), "at"),
        (lambda s: s.every(3).monday, "every"),
        (lambda s: s.every(0).seconds, "every"),
        (lambda s: s.every().day.at("16:00", tz="Mars/Olympus"), "tz"),
        (lambda s: s.cron("61 * * * *"), "schedule"),
        (lambda s: s.cron("* * *"), "schedule"),
        (lambda s: s.every().do(job), "every"),
    ],
)
def test_bad_schedules_are_rejected_where_written(build, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        build(Scheduler())
    assert info.value.field == field


def test_bad_registry_strings_name_the_schedule() -> None:
    for text in ("every fortnight", "every day at noon", "sometimes", ""):
        with pytest.raises(ValidationError) as info:
            parse_schedule(text)
        assert info.value.field == "schedule"
