"""Run the whole test session with its clock moved: the acceptance check that no test passes or
fails by the day it runs.

    QUANTSTRIP_TEST_TRAVEL=2027-03-14T06:59:30Z .venv/bin/python -m pytest -p no:cacheprovider
    QUANTSTRIP_TEST_TRAVEL=spring-forward .venv/bin/python -m pytest -p no:cacheprovider
    make test-travel        # every moment in MOMENTS, one session each

At configure time (before any test module is imported) the plugin starts
`time_machine.travel(moment, tick=True)`: Python's wall clock in this process (and in pytest-xdist
workers, which configure this plugin too) starts at `moment` and runs on from there, so timed
waits, APScheduler and servers in threads keep working. `time.monotonic()` is not moved.

What time-machine cannot move: another process's clock (the daemon, a client process, a Jupyter
kernel or server), OpenSSL's certificate checks, file modification times. Tests that compare a
time from there with this process's clock carry the `real_clock` marker and are deselected
while travelling (they run in the ordinary session). Everything else must pass at each moment.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

ENV = "QUANTSTRIP_TEST_TRAVEL"
# The acceptance moments (issue 14): edges of the week, the year, DST, the exchange calendar.
MOMENTS = {
    "saturday-noon": "2027-06-12T12:00:00Z",
    "year-end": "2026-12-31T23:59:30Z",
    "spring-forward": "2027-03-14T06:59:30Z",  # 01:59:30 in New York, just before the jump
    "nyse-holiday": "2027-07-05T14:30:00Z",  # Independence Day observed, 10:30 in New York
    "leap-day": "2028-02-29T12:00:00Z",
}

_traveller = None


def destination(text: str) -> datetime:
    """A preset name from MOMENTS or an ISO 8601 moment ('Z' or an offset; naive means UTC)."""
    text = MOMENTS.get(text.strip(), text.strip())
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise pytest.UsageError(
            f"{ENV}={text!r}: expected an ISO moment or one of {', '.join(MOMENTS)}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def pytest_configure(config: pytest.Config) -> None:
    global _traveller
    text = os.environ.get(ENV, "")
    if not text or _traveller is not None:
        return
    import time_machine

    moment = destination(text)
    _traveller = time_machine.travel(moment, tick=True)
    _traveller.start()
    config.stash[_moment_key] = moment


def pytest_unconfigure(config: pytest.Config) -> None:
    global _traveller
    if _traveller is not None:
        _traveller.stop()
        _traveller = None


def pytest_report_header(config: pytest.Config) -> str | None:
    moment = config.stash.get(_moment_key, None)
    if moment is None:
        return None
    return f"time travel: the session's clock started at {moment.isoformat()} (ticking)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.stash.get(_moment_key, None) is None:
        return
    kept = [item for item in items if item.get_closest_marker("real_clock") is None]
    dropped = [item for item in items if item.get_closest_marker("real_clock") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


_moment_key = pytest.StashKey[datetime]()
