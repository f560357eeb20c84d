"""A page's first data is read while the browser boots and lands in the widgets' state
(dashboard/first_state.py; issue 18, performance).

The portfolio's first report (DuckDB opened, the report, the unrealised PnL) was read inside the
page's Voila cell, so the browser got the page only after it. Now the cell returns at once and the
kernel's answer to the browser's state request waits for the report instead. The scenarios below
drive each order the thread, the browser's state request and its first tick can arrive in; the
last ones run the real page, in-process and in a real page kernel asked over the widgets' own
control comm, as the browser asks.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client import KernelManager
from support.page_probe import demo_workspace

from quantstrip import clock
from quantstrip.dashboard.first_state import Browser, Failed, FirstData

WAIT_S = 60.0  # bound on every wait below; none is a timing assertion


class Page:
    """What a page does with its first data: records each show (the result, browser ready)."""

    def __init__(self, result: object = "report", hold_s: float = 30.0) -> None:
        self.release = threading.Event()
        self.result = result
        self.shown: list[tuple[object, bool]] = []
        self.first = FirstData(self.compute, self.show, hold_s=hold_s)

    def compute(self) -> object:
        assert self.release.wait(WAIT_S)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result

    def show(self, result: object, browser_ready: bool) -> None:
        self.shown.append((result, browser_ready))

    def wait_shown(self) -> None:
        deadline = clock.monotonic() + WAIT_S
        while not self.shown:
            assert clock.monotonic() < deadline, "never shown"
            self.first._done.wait(0.05)


def test_data_ready_before_the_browser_asks_is_in_the_state() -> None:
    page = Page()
    page.first.start()
    page.release.set()
    page.wait_shown()
    assert page.shown == [("report", False)]  # on the widgets before any state left
    page.first.before_state()
    page.first.browser_ready()
    assert page.shown == [("report", False)]  # once


def test_the_state_answer_waits_for_data_still_being_read() -> None:
    page = Page()
    page.first.start()
    answered = threading.Event()

    def browser_asks() -> None:
        page.first.before_state()
        answered.set()

    asking = threading.Thread(target=browser_asks)
    asking.start()
    assert not answered.wait(0.3)  # held: the data is not read yet
    page.release.set()
    asking.join(WAIT_S)
    assert answered.is_set()
    assert page.shown == [("report", False)]  # shown before the answer went out
    assert page.first.browser is Browser.FETCHING


def test_data_slower_than_the_hold_waits_for_the_browsers_first_tick() -> None:
    """An update sent after the state but before the browser built the models is dropped by
    the browser: between the two it is kept, and shown at the first tick."""
    page = Page(hold_s=0.05)
    page.first.start()
    page.first.before_state()  # the hold runs out: the state goes without the data
    assert page.shown == [] and page.first.browser is Browser.FETCHING
    page.release.set()
    assert page.first._done.wait(WAIT_S)
    assert page.shown == []  # not sent while the browser builds the widgets
    page.first.browser_ready()
    assert page.shown == [("report", True)]


def test_data_after_the_first_tick_is_shown_when_read() -> None:
    page = Page(hold_s=0.05)
    page.first.start()
    page.first.before_state()
    page.first.browser_ready()  # nothing to show yet
    assert page.shown == []
    page.release.set()
    page.wait_shown()
    assert page.shown == [("report", True)]


def test_a_failing_read_is_shown_as_its_error() -> None:
    page = Page(result=RuntimeError("ledger locked"))
    page.first.start()
    page.release.set()
    page.first.before_state()
    ((result, ready),) = page.shown
    assert isinstance(result, Failed) and str(result.error) == "ledger locked"
    assert ready is False


def test_a_cancelled_read_is_never_shown() -> None:
    page = Page()
    page.first.start()
    page.first.cancel()
    page.release.set()
    assert page.first._done.wait(WAIT_S)
    page.first.browser_ready()
    assert page.shown == []


@pytest.fixture
def demo(workspace: Path) -> dict[str, str]:
    return demo_workspace(workspace)


def test_the_portfolio_cell_returns_before_its_report_is_read(
    demo: dict[str, str], workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read inside the cell, the report kept the page from the browser for its whole read."""
    from quantstrip.analytics import connection, metrics
    from quantstrip.dashboard import portfolio

    release = threading.Event()
    real = metrics.portfolio_report

    def held(*args: Any, **kwargs: Any) -> metrics.PortfolioReport:
        assert release.wait(WAIT_S)
        return real(*args, **kwargs)

    monkeypatch.setattr(metrics, "portfolio_report", held)
    connection.reset()
    built: list[portfolio.PortfolioPage] = []
    cell = threading.Thread(target=lambda: built.append(portfolio.page()), daemon=True)
    cell.start()
    cell.join(WAIT_S / 2)
    release.set()  # the old page is still in its cell here: the join above ran out
    assert built, "the page's cell waited for its report"
    (page,) = built
    try:
        assert "<table" not in page.stats.value and page.apply.disabled
        page.first.before_state()  # the browser asks for the widgets' state
        assert "<table" in page.stats.value
        assert set(page.strategies.value) == set(page.strategies.options) != set()
        assert not page.apply.disabled
    finally:
        page.browser.stop()
        connection.reset()


def _request_states(manager: KernelManager) -> dict[str, Any]:
    """Ask the kernel for every widget's state as Voila's widget manager does (ipywidgets 8's
    control comm): the states by model id."""
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=WAIT_S)
        comm_id = uuid.uuid4().hex
        opened = client.session.msg(
            "comm_open",
            {"comm_id": comm_id, "target_name": "jupyter.widget.control", "data": {}},
            metadata={"version": "1.0.0"},
        )
        client.shell_channel.send(opened)
        ask = client.session.msg(
            "comm_msg", {"comm_id": comm_id, "data": {"method": "request_states"}}
        )
        client.shell_channel.send(ask)
        deadline = clock.monotonic() + WAIT_S
        while clock.monotonic() < deadline:
            msg = client.get_iopub_msg(timeout=WAIT_S)
            content = msg["content"]
            if msg["msg_type"] == "comm_msg" and content.get("comm_id") == comm_id:
                assert content["data"]["method"] == "update_states"
                return content["data"]["states"]
        raise AssertionError("no update_states answer")
    finally:
        client.stop_channels()


def _execute(manager: KernelManager, code: str, timeout: float) -> dict[str, Any]:
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=WAIT_S)
        return client.execute_interactive(code, timeout=timeout)["content"]
    finally:
        client.stop_channels()


@pytest.fixture
def page_kernel(demo: dict[str, str], workspace: Path) -> Iterator[KernelManager]:
    from test_warm_kernels import page_manager

    manager = page_manager()
    manager.start_kernel(env=demo, cwd=str(workspace))
    yield manager
    manager.shutdown_kernel(now=True)


def test_the_portfolio_kernel_answers_the_browsers_state_request_with_its_statistics(
    page_kernel: KernelManager,
) -> None:
    """In a real page kernel: the page's cell returns while its report is held back, and the
    widgets' state the browser then asks for over the control comm carries the statistics."""
    cell = (
        "import threading\n"
        "from quantstrip.analytics import metrics\n"
        "from quantstrip.dashboard import portfolio\n"
        "release, real = threading.Event(), metrics.portfolio_report\n"
        "metrics.portfolio_report = lambda *a, **k: (release.wait(60), real(*a, **k))[1]\n"
        "page = portfolio.page()\n"
    )
    reply = _execute(page_kernel, cell, timeout=WAIT_S / 2)  # the old page: held until 60 s
    assert reply["status"] == "ok", reply
    assert _execute(page_kernel, "release.set()", timeout=WAIT_S)["status"] == "ok"
    states = _request_states(page_kernel)
    stats = [
        s["state"] for s in states.values() if "qs-stats" in s["state"].get("_dom_classes", ())
    ]
    assert len(stats) == 1 and "<table" in stats[0]["value"], stats
    chosen = [
        s["state"]
        for s in states.values()
        if "qs-portfolio-strategies" in s["state"].get("_dom_classes", ())
    ]
    assert chosen[0]["_options_labels"] == [
        "ma_crossover",
        "mean_reversion",
        "momentum_rotation",
    ]
    # the page's ticker learns that a browser has the page (it nudges only from then on)
    told = (
        "from quantstrip.dashboard import first_state\nassert first_state.STATE_REQUESTED.is_set()"
    )
    assert _execute(page_kernel, told, timeout=WAIT_S)["status"] == "ok"
