"""The browser-driven refresh does not swallow a failing refresh: the page shows the error (and
the kernel's log has its traceback) while ticks go on, and the next good refresh clears it. The
kernel nudges the browser's ticker only once a browser has the page, and not for long."""

from __future__ import annotations

import logging
import threading

import pytest

from quantstrip import clock
from quantstrip.dashboard import first_state
from quantstrip.dashboard import ticker as ticker_module
from quantstrip.dashboard.ticker import BrowserTicker


def test_a_failing_refresh_is_shown_and_logged_and_the_ticks_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcomes = [OSError("database is locked"), None]
    calls: list[int] = []

    def refresh() -> None:
        calls.append(1)
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    ticker = BrowserTicker(refresh)
    try:
        with caplog.at_level(logging.ERROR, logger="quantstrip.dashboard"):
            ticker.play.value += 1  # the browser's tick
        assert "refresh failed" in ticker.error.value
        assert "database is locked" in ticker.error.value
        assert any(r.exc_info and "database is locked" in r.getMessage() for r in caplog.records)
        ticker.play.value += 1  # ticks go on; a good refresh clears the message
        assert len(calls) == 2 and ticker.error.value == ""
        assert ticker.error in ticker.widget.children and ticker.play in ticker.widget.children
    finally:
        ticker.stop()


# The nudges (see ticker.py): a `Play` starts ticking only when its view sees `playing` turn
# true, so the kernel turns it off and on until the first tick arrives. Below, each scenario
# counts the nudges the kernel sends.

WAIT_S = 60.0  # bound on every wait; no assertion is on a duration


class Nudges:
    def __init__(self, ticker: BrowserTicker) -> None:
        self.count = 0
        ticker.play.observe(self._seen, names="playing")

    def _seen(self, change: dict) -> None:
        if change["new"]:
            self.count += 1

    def wait_for(self, count: int) -> None:
        deadline = clock.monotonic() + WAIT_S
        while self.count < count:
            assert clock.monotonic() < deadline, f"{self.count} nudges, expected {count}"
            threading.Event().wait(0.01)


@pytest.fixture
def booting(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """This kernel's browser has not asked for the widgets' state yet."""
    requested = threading.Event()
    monkeypatch.setattr(first_state, "STATE_REQUESTED", requested)
    return requested


def test_no_nudge_goes_to_a_page_no_browser_has_booted(booting: threading.Event) -> None:
    """Before the state request no view exists; a tab closed that early was nudged for 120 s."""
    ticker = BrowserTicker(lambda: None, kick_every_s=0.01)
    nudges = Nudges(ticker)
    try:
        ticker.start()
        ticker.kicker.join(0.3)  # 30 nudges' time at the old pace
        assert nudges.count == 0 and ticker.kicker.is_alive()
    finally:
        ticker.stop()


def test_nudges_begin_with_the_state_request_and_end_at_the_first_tick(
    booting: threading.Event,
) -> None:
    ticks: list[int] = []
    ticker = BrowserTicker(lambda: ticks.append(1), kick_every_s=0.01)
    nudges = Nudges(ticker)
    try:
        ticker.start()
        booting.set()  # the browser asks for the widgets' state
        nudges.wait_for(3)
        ticker.play.value += 1  # its first tick
        ticker.kicker.join(WAIT_S)
        assert not ticker.kicker.is_alive() and ticks == [1]
    finally:
        ticker.stop()


def test_a_tab_closed_before_its_first_tick_is_nudged_for_a_bounded_time(
    booting: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ticker_module, "KICK_AFTER_STATE_S", 0.2)
    ticker = BrowserTicker(lambda: None, kick_every_s=0.01)
    nudges = Nudges(ticker)
    try:
        ticker.start()
        booting.set()
        ticker.kicker.join(WAIT_S)  # no tick ever comes
        assert not ticker.kicker.is_alive() and nudges.count >= 1
        seen = nudges.count
        ticker.kicker.join(0.1)
        assert nudges.count == seen
    finally:
        ticker.stop()
