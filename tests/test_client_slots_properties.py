"""Properties of schedule slots that make restarts safe, over many zones, dates and schedules.

A daemon that stops at any moment and resumes computes the rest of its slots from that moment:
the slots must not depend on where the window was cut (no double run, no skip), and a fixed
wall time must fire at most once per local date whatever DST does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from quantstrip.client.schedule import missed_slots, parse_schedule

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Australia/Sydney",  # southern-hemisphere DST
    "Asia/Kolkata",  # a half-hour offset
    "America/Sao_Paulo",
    "Australia/Lord_Howe",  # a half-hour DST shift
]
SCHEDULES = [
    "every 5 minutes",
    "every 7 minutes",
    "every 90 minutes",
    "every 2 hours",
    "every 5 hours",
    "every hour at :15",
    "every day at 01:30",
    "every day at 02:30",
    "every 3 days at 00:30",
    "every weekday at 16:05",
    "every 2 weeks",
    "30 1 * * *",
    "*/20 1-3 * * *",
    "0 9 1 * 1",
]
# Around the DST changes of several zones, and ordinary days between them.
moments = st.datetimes(
    min_value=datetime(2027, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=50, deadline=None)
@given(
    schedule=st.sampled_from(SCHEDULES),
    zone=st.sampled_from(ZONES),
    start=moments,
    cut_fraction=st.floats(min_value=0, max_value=1),
    span_hours=st.integers(min_value=1, max_value=72),
)
def test_a_restart_anywhere_neither_repeats_nor_skips_a_slot(
    schedule: str, zone: str, start: datetime, cut_fraction: float, span_hours: int
) -> None:
    trigger = parse_schedule(schedule, zone)
    end = start + timedelta(hours=span_hours)
    cut = start + (end - start) * cut_fraction
    whole = missed_slots(trigger, start, end, limit=10_000)
    before = missed_slots(trigger, start, cut, limit=10_000)
    after = missed_slots(parse_schedule(schedule, zone), cut, end, limit=10_000)
    assert whole.slots == before.slots + after.slots
    stamps = [slot.timestamp() for slot in whole.slots]
    assert stamps == sorted(set(stamps))


@settings(max_examples=30, deadline=None)
@given(
    schedule=st.sampled_from(
        ["every day at 01:30", "every day at 02:30", "30 1 * * *", "every weekday at 00:15"]
    ),
    zone=st.sampled_from(ZONES),
    start=moments,
)
def test_a_fixed_wall_time_fires_at_most_once_per_local_date(
    schedule: str, zone: str, start: datetime
) -> None:
    tz = ZoneInfo(zone)
    fires = missed_slots(parse_schedule(schedule, zone), start, start + timedelta(days=60)).slots
    days = [f.astimezone(tz).date() for f in fires]
    assert len(days) == len(set(days))
    # ...and on every date it should (a daily job misses no date, DST or not).
    if schedule.startswith("every day") or schedule.startswith("30 "):
        assert len(days) >= 59
