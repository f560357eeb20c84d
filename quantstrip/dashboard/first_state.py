"""A page's first data, computed while the browser boots, in the widgets' state when it arrives.

A page's Voila cell held the page until its data was read: the browser gets the page only after
the cell has run, then spends most of a second starting Voila's front end before it asks the
kernel for the widgets' state. The portfolio's first report (about 0.4 s: opening DuckDB, the
report, the unrealised PnL) was paid before that second, not during it.

`FirstData` computes in a thread started with the page, so the cell returns at once. What the
page shows of it gets onto the widgets at one of two safe moments, never in between:
- before the kernel answers the browser's one request for every widget's state (ipywidgets 8's
  control comm, `request_states`): the answer waits for the thread, at most `hold_s`, so the
  data arrives in the state itself (no update can be lost, no extra round trip);
- or, when the thread took longer than that (a large ledger), once the browser has built the
  widgets (its first tick, see ticker.BrowserTicker): an update sent after the state but before
  the browser has the models is dropped by the browser.
The browser gives up waiting for the state after 4 s and falls back to a slower protocol, so
`hold_s` stays well below it.

The hook wraps ipywidgets' control-comm handler (installed once per kernel, before the browser
opens that comm: it does so only after the page's cell has run). `STATE_REQUESTED` tells the
rest of the kernel that a browser has booted the page (ticker.BrowserTicker starts nudging then).
"""

from __future__ import annotations

import enum
import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ipywidgets import Widget

HOLD_S = 2.5  # the browser's own limit for the state is 4 s
T = TypeVar("T")
log = logging.getLogger("quantstrip.dashboard")


# Set when a browser first asks this kernel for the widgets' state: until then no view exists.
STATE_REQUESTED = threading.Event()


class Browser(enum.Enum):
    """How far the browser has got with the page's widgets."""

    BOOTING = "booting"  # has not asked for the widgets' state yet
    FETCHING = "fetching"  # has the state, is building the models and views
    READY = "ready"  # has the widgets (its first tick arrived): updates reach it


@dataclass(frozen=True)
class Failed:
    """The computation raised: what the page shows instead of its data."""

    error: Exception


class FirstData(Generic[T]):
    """`compute()` in a thread; `show(result, browser_ready)` on the page at a safe moment,
    once, unless `cancel()` (a newer refresh) came first. `show` gets a `Failed` when `compute`
    raised: the page says so (the traceback goes to the kernel's log)."""

    def __init__(
        self,
        compute: Callable[[], T],
        show: Callable[[T | Failed, bool], None],
        hold_s: float = HOLD_S,
    ) -> None:
        self._compute = compute
        self._show = show
        self.hold_s = hold_s
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._result: T | Failed | None = None
        self.browser = Browser.BOOTING
        self.shown = False  # shown, or cancelled: nothing more to do
        install()

    def start(self) -> FirstData[T]:
        _waiting.add(self)
        # Not a daemon: the interpreter's exit waits for it. A daemon thread still inside
        # DuckDB when the process exits aborts it ("terminate called without an active
        # exception"), as when a tab's kernel is shut down a moment after it started.
        threading.Thread(target=self._run, name="first-data", daemon=False).start()
        return self

    def cancel(self) -> None:
        with self._lock:
            self.shown = True
        _waiting.discard(self)

    def before_state(self) -> None:
        """The browser asked for the widgets' state: wait for the data, at most `hold_s`."""
        self._done.wait(self.hold_s)
        with self._lock:
            if self.browser is Browser.BOOTING:
                self._show_now(browser_ready=False)
                self.browser = Browser.FETCHING
        _waiting.discard(self)

    def browser_ready(self) -> None:
        """The browser has the page's widgets (call from the page's first tick)."""
        with self._lock:
            self.browser = Browser.READY
            self._show_now(browser_ready=True)

    def _run(self) -> None:
        try:
            result: T | Failed = self._compute()
        except Exception as exc:
            log.exception("a page's first data failed: %s", exc)
            result = Failed(exc)
        with self._lock:
            self._result = result
            self._done.set()
            if self.browser is not Browser.FETCHING:  # in the state to come, or an update
                self._show_now(browser_ready=self.browser is Browser.READY)

    def _show_now(self, browser_ready: bool) -> None:
        """Under the lock: show the result if there is one and it was not shown yet."""
        if self.shown or not self._done.is_set():
            return
        self.shown = True
        result = self._result
        assert result is not None
        try:
            self._show(result, browser_ready)
        except Exception as exc:  # the page says so rather than waiting forever
            log.exception("showing a page's first data failed: %s", exc)
            self._show(Failed(exc), browser_ready)


_waiting: weakref.WeakSet[FirstData] = weakref.WeakSet()
_installed = False


def install() -> None:
    """Make the kernel's answer to the browser's `request_states` wait for each page's first
    data (`FirstData.before_state`) first, and set `STATE_REQUESTED`."""
    global _installed
    if _installed:
        return
    answer = Widget._handle_control_comm_msg  # bound to Widget: a classmethod

    def answer_after_first_data(cls: type[Widget], msg: dict) -> None:
        if msg.get("content", {}).get("data", {}).get("method") == "request_states":
            STATE_REQUESTED.set()
            for first in list(_waiting):
                first.before_state()
        answer(msg)

    Widget._handle_control_comm_msg = classmethod(answer_after_first_data)  # type: ignore[assignment]
    _installed = True
