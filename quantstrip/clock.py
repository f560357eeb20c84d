"""The one source of "now" for the whole product.

Schedules, trading calendars, end-of-day digests, run ids, log stamps and countdowns all ask
this module, never `datetime.now()` directly, so that:

- every "now" is time-zone aware (UTC unless a zone is asked for); a naive local time read from
  the machine differs between a laptop and a server and is the classic source of off-by-hours
  bugs around midnight and DST;
- tests move time in one way: `time_machine.travel(...)` patches what these functions read, so
  a weekend, a year end or a DST change can be reproduced on any day the suite runs.

`monotonic()` is for measuring durations and deadlines only (it never jumps when the wall clock
is moved); `epoch()` is wall-clock seconds for values shared between processes (heartbeats).
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, tzinfo


def now(tz: tzinfo | None = None) -> datetime:
    """The current moment, aware, in `tz` (UTC when none is given)."""
    return datetime.now(tz or UTC)


def local_now() -> datetime:
    """The current moment in the machine's own zone (for showing to the operator only)."""
    return datetime.now().astimezone()


def today(tz: tzinfo | None = None) -> date:
    """Today's date in `tz` (UTC when none is given): the day boundary is always explicit."""
    return now(tz).date()


def epoch() -> float:
    """Wall-clock seconds since the epoch, for stamps compared across processes."""
    return time.time()


def monotonic() -> float:
    """Seconds on a clock that never jumps: durations, timeouts and deadlines."""
    return time.monotonic()


def stamp(tz: tzinfo | None = None) -> str:
    """A compact sortable stamp for file and run names, e.g. 20261201T213418."""
    return now(tz).strftime("%Y%m%dT%H%M%S")
