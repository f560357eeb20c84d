"""The fluent scheduler and registry schedule strings: which moments they fire at.

Every expectation here is a fixed moment; triggers are asked with an explicit `now`, or under
time-machine when the code under test reads the clock itself (a builder, a running scheduler).
"""

from __future__ import annotations

import itertools
import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from support.daemon import wait_until

from quantstrip.client.calendar import SessionTrigger, is_session
from quantstrip.client.schedule import Scheduler, missed_slots, parse_schedule
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


def between(trigger, since: datetime, until: datetime) -> list[datetime]:
    return list(missed_slots(trigger, since, until, limit=10_000).slots)


def job() -> None:
    pass


def test_every_day_at_uses_the_given_time_zone() -> None:
    s = Scheduler()
    scheduled = s.every().day.at("16:00", tz="America/New_York").do(job)
    fires = next_fires(scheduled.trigger, 2)
    assert fires[0] == datetime(2026, 11, 24, 16, 0, tzinfo=NY)
    assert fires[1] == datetime(2026, 11, 25, 16, 0, tzinfo=NY)
    assert s.jobs == [scheduled] and scheduled.name == "job"


def test_default_time_zone_is_utc_not_the_machine_zone() -> None:
    trigger = Scheduler().every().day.at("16:00").do(job).trigger
    assert next_fires(trigger, 1)[0] == datetime(2026, 11, 24, 16, 0, tzinfo=UTC)


def test_every_n_seconds_minutes_hours_fire_on_whole_calendar_slots() -> None:
    s = Scheduler()
    odd_moment = datetime(2026, 11, 24, 12, 2, 7, 123456, tzinfo=UTC)
    assert next_fires(s.every(5).minutes.do(job).trigger, 2, odd_moment) == [
        datetime(2026, 11, 24, 12, 5, tzinfo=UTC),
        datetime(2026, 11, 24, 12, 10, tzinfo=UTC),
    ]
    assert next_fires(s.every().second.do(job).trigger, 1, odd_moment) == [
        datetime(2026, 11, 24, 12, 2, 8, tzinfo=UTC)
    ]
    assert next_fires(s.every(2).hours.do(job).trigger, 2, odd_moment) == [
        datetime(2026, 11, 24, 14, tzinfo=UTC),
        datetime(2026, 11, 24, 16, tzinfo=UTC),
    ]
    # 90 minutes divides a day: the slots are the same wall times every day, from midnight.
    ninety = Scheduler(tz="America/New_York").every(90).minutes.do(job).trigger
    assert [f.strftime("%H:%M") for f in next_fires(ninety, 3, NOW)] == ["07:30", "09:00", "10:30"]
    # 7 minutes does not: whole minutes still, counted from a fixed midnight.
    seven = next_fires(s.every(7).minutes.do(job).trigger, 3, odd_moment)
    assert all(f.second == 0 and f.microsecond == 0 for f in seven)
    assert [b - a for a, b in itertools.pairwise(seven)] == [timedelta(minutes=7)] * 2


@pytest.mark.parametrize("build", [lambda s: s.every(5).minutes, lambda s: s.every(2).days])
def test_fluent_interval_slots_do_not_depend_on_when_the_client_started(build) -> None:
    """A client process restarted at another moment computes the same slots (the old
    IntervalTrigger counted from the process start, microseconds included)."""
    slots = []
    for started in (
        datetime(2026, 11, 24, 12, 2, 7, 123456, tzinfo=UTC),
        datetime(2026, 11, 25, 18, 3, 59, 900000, tzinfo=UTC),
    ):
        with time_machine.travel(started, tick=False):
            trigger = build(Scheduler()).do(job).trigger
        slots.append(next_fires(trigger, 3, datetime(2026, 11, 30, 9, 1, tzinfo=UTC)))
    assert slots[0] == slots[1]
    assert all(f.second == 0 and f.microsecond == 0 for f in slots[0])


def test_every_n_days_at_keeps_its_slot_dates_across_restarts() -> None:
    """every(3).days.at() counted its dates from the day the process started: a restart on
    another day moved every later slot (a skip or a double run)."""
    runs = []
    for started in (datetime(2027, 5, 3, 8, tzinfo=UTC), datetime(2027, 5, 4, 8, tzinfo=UTC)):
        with time_machine.travel(started, tick=False):
            trigger = Scheduler().every(3).days.at("09:00").do(job).trigger
        runs.append(
            between(trigger, datetime(2027, 5, 5, tzinfo=UTC), datetime(2027, 5, 20, tzinfo=UTC))
        )
    assert runs[0] == runs[1]
    assert [r.day for r in runs[0]] == [5, 8, 11, 14, 17]
    assert {r.strftime("%H:%M") for r in runs[0]} == {"09:00"}


def test_registry_every_n_days_is_midnight_in_the_zone_all_year() -> None:
    """The anchored interval counted elapsed seconds from a winter midnight: in summer the
    'every 2 days' slot fired at 01:00 in New York."""
    trigger = parse_schedule("every 2 days", "America/New_York")
    summer = between(trigger, datetime(2027, 7, 1, tzinfo=NY), datetime(2027, 7, 9, tzinfo=NY))
    assert [f.isoformat() for f in summer] == [
        "2027-07-02T00:00:00-04:00",
        "2027-07-04T00:00:00-04:00",
        "2027-07-06T00:00:00-04:00",
        "2027-07-08T00:00:00-04:00",
    ]
    weekly = parse_schedule("every 2 weeks", "America/New_York")
    fires = between(weekly, datetime(2027, 7, 1, tzinfo=NY), datetime(2027, 8, 10, tzinfo=NY))
    assert [f.strftime("%a %d %H:%M") for f in fires] == [
        "Mon 12 00:00",
        "Mon 26 00:00",
        "Mon 09 00:00",
    ]


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
    assert next_fires(parse_schedule("0 12 * * fri-sun"), 3)[0].strftime("%a") == "Fri"


def test_cron_day_of_month_or_day_of_week_as_crontab_does() -> None:
    """crontab fires "0 9 1 * 1" on the 1st and on every Monday; APScheduler alone needed
    both at once (a Monday the 1st)."""
    fires = between(
        parse_schedule("0 9 1 * 1"),
        datetime(2027, 6, 25, tzinfo=UTC),
        datetime(2027, 7, 20, tzinfo=UTC),
    )
    assert [f.strftime("%a %d %b") for f in fires] == [
        "Mon 28 Jun",
        "Thu 01 Jul",
        "Mon 05 Jul",
        "Mon 12 Jul",
        "Mon 19 Jul",
    ]
    expiry = parse_schedule("0 10 * * 5#3", "America/New_York")  # third Friday: options expiry
    first = datetime(2027, 1, 1, tzinfo=UTC)
    assert [f.day for f in next_fires(expiry, 3, first)] == [15, 19, 19]
    month_end = parse_schedule("0 0 L * *")
    assert [
        f.date().isoformat() for f in next_fires(month_end, 2, datetime(2028, 2, 1, tzinfo=UTC))
    ] == [
        "2028-02-29",
        "2028-03-31",
    ]


# ---- DST --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: parse_schedule("every day at 02:30", "America/New_York"),
        lambda: parse_schedule("30 2 * * *", "America/New_York"),
        lambda: Scheduler(tz="America/New_York").every(2).days.at("02:30").do(job).trigger,
        lambda: Scheduler().every().day.at("02:30", tz="America/New_York").do(job).trigger,
    ],
)
def test_a_0230_job_runs_once_on_the_spring_forward_day(build) -> None:
    """02:30 does not exist in New York on 14 March 2027: the job runs once that day, when
    the clock jumps past it (03:30 EDT), and at 02:30 on the days around."""
    with time_machine.travel(datetime(2027, 3, 9, 12, tzinfo=UTC), tick=False):
        trigger = build()
    fires = between(trigger, datetime(2027, 3, 10, tzinfo=NY), datetime(2027, 3, 19, tzinfo=NY))
    by_day: dict[str, list[str]] = {}
    for fire in fires:
        local = fire.astimezone(UTC).astimezone(NY)
        by_day.setdefault(local.date().isoformat(), []).append(local.strftime("%H:%M"))
        assert fire.utcoffset() == local.utcoffset(), f"{fire} is not a real New York time"
    assert all(len(times) == 1 for times in by_day.values()), by_day
    assert by_day.get("2027-03-14", ["03:30"]) == ["03:30"]
    assert {t for d, (t,) in by_day.items() if d != "2027-03-14"} == {"02:30"}


@pytest.mark.parametrize(
    "text", ["every day at 01:30", "30 1 * * *", "every day at 02:30", "every weekday at 01:30"]
)
def test_a_fixed_time_job_runs_once_on_the_fall_back_day(text: str) -> None:
    """On 7 November 2027 New York lives 01:00-02:00 twice: a daily 01:30 job ran twice."""
    trigger = parse_schedule(text, "America/New_York")
    fires = between(trigger, datetime(2027, 11, 4, tzinfo=NY), datetime(2027, 11, 10, tzinfo=NY))
    days = [f.astimezone(NY).date().isoformat() for f in fires]
    assert len(days) == len(set(days)), fires
    assert ("2027-11-07" in days) == ("weekday" not in text)


def test_sub_hourly_jobs_keep_firing_through_the_repeated_hour() -> None:
    trigger = parse_schedule("every 30 minutes", "America/New_York")
    fires = between(
        trigger, datetime(2027, 11, 7, 4, 59, tzinfo=UTC), datetime(2027, 11, 7, 7, 1, tzinfo=UTC)
    )
    assert [f.astimezone(UTC).strftime("%H:%M") for f in fires] == [
        "05:00",
        "05:30",
        "06:00",
        "06:30",
        "07:00",
    ]
    assert [f.astimezone(UTC) - f0.astimezone(UTC) for f0, f in itertools.pairwise(fires)] == [
        timedelta(minutes=30)
    ] * 4


def test_a_running_scheduler_fires_once_across_the_spring_forward_gap() -> None:
    """The real APScheduler loop, its clock moved by time-machine: the 02:00 job fires at the
    jump (07:00 UTC) and its next run is the next day, not a second run."""
    fired = threading.Event()
    with time_machine.travel(datetime(2027, 3, 14, 6, 59, 59, tzinfo=UTC), tick=True):
        s = Scheduler()
        scheduled = s.every().day.at("02:00", tz="America/New_York").do(fired.set)
        s.start()
        try:
            assert fired.wait(30), "the job did not fire at the DST jump"
            # APScheduler moves the job to its next run just after handing it to a thread.
            wait_until(lambda: scheduled.next_run() > datetime(2027, 3, 14, 7, tzinfo=UTC))
            assert scheduled.next_run() == datetime(2027, 3, 15, 2, 0, tzinfo=NY)
        finally:
            s.shutdown()


def test_a_running_scheduler_does_not_repeat_a_fixed_time_in_the_fall_back_hour() -> None:
    with time_machine.travel(datetime(2027, 11, 7, 5, 59, 58, tzinfo=UTC), tick=True):
        s = Scheduler()  # 01:59:58 EDT: 01:00 EDT has passed, 01:00 EST is two seconds away
        scheduled = s.every().day.at("01:00", tz="America/New_York").do(job)
        s.start()
        try:
            assert scheduled.next_run() == datetime(2027, 11, 8, 1, 0, tzinfo=NY)
        finally:
            s.shutdown()


# ---- exchange calendars -------------------------------------------------------------------


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
    every_minute = Scheduler().every().minute.on_sessions("XNYS").do(job).trigger
    saturday = datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert every_minute.get_next_fire_time(None, saturday) == datetime(2026, 11, 30, tzinfo=NY)


@pytest.fixture
def server_in_tokyo(monkeypatch: pytest.MonkeyPatch):
    """The process's own zone is Tokyo: nothing may follow it."""
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_1600_gated_job_follows_the_exchange_zone_not_the_server_or_scheduler_zone(
    server_in_tokyo,
) -> None:
    """Between the US and the UK DST changes (14-28 March 2027) New York is 4 h behind
    London's zone instead of 5: the close-of-day job moves with New York."""
    s = Scheduler(tz="Europe/London")
    fluent = s.every().day.at("16:00").on_sessions("XNYS").do(job).trigger
    registry = parse_schedule("every weekday at 16:00", calendar="XNYS")
    for trigger in (fluent, registry):
        fires = between(
            trigger, datetime(2027, 3, 11, tzinfo=UTC), datetime(2027, 3, 17, tzinfo=UTC)
        )
        assert [f.astimezone(UTC).strftime("%a %d %H:%M") for f in fires] == [
            "Thu 11 21:00",
            "Fri 12 21:00",
            "Mon 15 20:00",
            "Tue 16 20:00",
        ]
    # A job that names its zone keeps it.
    london = s.every().day.at("16:00", tz="Europe/London").on_sessions("XNYS").do(job).trigger
    assert london.get_next_fire_time(None, datetime(2027, 3, 15, tzinfo=UTC)).hour == 16


def test_session_gate_keeps_firing_after_years_of_uptime() -> None:
    """exchange_calendars' default calendar ends a year after it was built: a daemon up for
    longer saw no session ahead and its gated jobs stopped for good."""
    with time_machine.travel(datetime(2026, 11, 24, 12, tzinfo=UTC), tick=False):
        trigger = parse_schedule("every weekday at 16:05", "America/New_York", calendar="XNYS")
        assert trigger.get_next_fire_time(None, NOW) == datetime(2026, 11, 24, 16, 5, tzinfo=NY)
    for later in (datetime(2028, 7, 3, 21, tzinfo=UTC), datetime(2031, 6, 30, 21, tzinfo=UTC)):
        with time_machine.travel(later, tick=False):
            from quantstrip import clock

            fires = next_fires(trigger, 2, clock.now())
        assert all(is_session("XNYS", f) for f in fires)
        assert fires[0] - later < timedelta(days=4), fires
    # 4 July 2028 (a Tuesday) is a holiday: Monday 3rd, then Wednesday 5th.
    jul = next_fires(trigger, 2, datetime(2028, 7, 3, 12, tzinfo=UTC))
    assert [f.date().isoformat() for f in jul] == ["2028-07-03", "2028-07-05"]


def test_unknown_exchange_is_rejected_where_written() -> None:
    with pytest.raises(ValidationError) as info:
        Scheduler().every().day.at("16:00").on_sessions("NOPE")
    assert info.value.field == "calendar"


# ---- missed slots (for the daemon's catch-up policy) --------------------------------------


def test_missed_slots_lists_the_slots_of_a_downtime_window() -> None:
    trigger = parse_schedule("every 15 minutes")
    since, until = datetime(2027, 1, 4, 9, 50, tzinfo=UTC), datetime(2027, 1, 4, 11, tzinfo=UTC)
    found = missed_slots(trigger, since, until)
    assert [s.strftime("%H:%M") for s in found.slots] == [
        "10:00",
        "10:15",
        "10:30",
        "10:45",
        "11:00",
    ]
    assert found.total == 5 and found.complete and found.latest == until
    # `since` (the last slot that ran) is excluded, `until` (now) included.
    assert missed_slots(trigger, datetime(2027, 1, 4, 10, tzinfo=UTC), until).total == 4
    latest_two = missed_slots(trigger, since, until, limit=2)
    assert [s.strftime("%H:%M") for s in latest_two.slots] == ["10:45", "11:00"]
    assert latest_two.total == 5
    gated = parse_schedule("every day at 16:00", calendar="XNYS")
    weekend = missed_slots(
        gated, datetime(2027, 1, 1, 22, tzinfo=UTC), datetime(2027, 1, 4, 20, tzinfo=UTC)
    )
    assert weekend.total == 0 and weekend.latest is None


def test_missed_slots_over_a_long_outage_of_a_fast_schedule_is_bounded() -> None:
    trigger = parse_schedule("every second")
    since, until = datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 1, 8, tzinfo=UTC)
    found = missed_slots(trigger, since, until, limit=3, max_steps=1_000)
    assert not found.complete and found.total >= 1_000
    assert [s - until for s in found.slots] == [
        timedelta(seconds=-2),
        timedelta(seconds=-1),
        timedelta(0),
    ]


def test_missed_slots_needs_aware_moments() -> None:
    with pytest.raises(ValidationError):
        missed_slots(parse_schedule("every minute"), datetime(2027, 1, 1), datetime(2027, 1, 2))


# ---- registry strings and bad input -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("every day at 16:00", "2026-11-24T16:00:00-05:00"),
        ("every 5 minutes", "2026-11-24T07:05:00-05:00"),
        ("every monday at 09:30", "2026-11-30T09:30:00-05:00"),
        ("every weekday at 16:05", "2026-11-24T16:05:00-05:00"),
        ("every hour at :15", "2026-11-24T07:15:00-05:00"),
        ("30 9 * * 1-5", "2026-11-24T09:30:00-05:00"),
    ],
)
def test_registry_schedule_strings(text: str, first: str) -> None:
    after = NOW + timedelta(minutes=1)  # 07:01 in New York
    assert (
        parse_schedule(text, "America/New_York").get_next_fire_time(None, after).isoformat()
        == first
    )


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
        (lambda s: s.cron("0 0 1 * 5#2"), "schedule"),
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
