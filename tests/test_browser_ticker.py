"""The browser-driven refresh does not swallow a failing refresh: the page shows the error (and
the kernel's log has its traceback) while ticks go on, and the next good refresh clears it."""

from __future__ import annotations

import logging

import pytest

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
