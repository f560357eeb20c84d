"""Periodic refresh driven by the browser, so that a closed tab costs nothing.

A refresh thread inside the page's kernel kept the kernel busy forever: Jupyter culls only idle
kernels, and every refresh (a widget update) is activity, so each tab ever opened held a kernel
(about 110 MB) until the server stopped. An ipywidgets `Play` ticks in the browser instead: while
the tab is open it asks the kernel to refresh every `interval_ms`; once the tab is closed nothing
asks, the kernel goes idle and the server's culling (jupyter_config: cull_idle_timeout) ends it.

A `Play` starts ticking only when its view sees `playing` change from false to true, and the page's
views are created after the page's cell has run. So the kernel nudges it (false, then true) once a
second until the first tick arrives. Not before the browser has asked for the widgets' state
(first_state.STATE_REQUESTED): until then no view exists to see a nudge, and a tab closed before
its page booted never asks (waited for at most `KICK_FOR_S`). After the state, for at most
`KICK_AFTER_STATE_S`: a tab closed before its first tick leaves its kernel idle after that, like
any other. (Nudging from the start for 120 s, the kernels of tabs closed early kept a loaded
machine busier while other pages loaded.)

A refresh that raises does not stop the ticks (the next one may succeed: a locked database, a
daemon restarting) and is not swallowed either: the page shows the error under the ticker, the
kernel's log gets its traceback, and the next good refresh clears the message.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import ipywidgets as w

from quantstrip import clock
from quantstrip.dashboard import first_state, shared_styles
from quantstrip.dashboard.common import error_html
from quantstrip.dashboard.display import format_time

KICK_EVERY_S = 1.0
KICK_FOR_S = 120.0  # for the browser to ask for the widgets' state
KICK_AFTER_STATE_S = 30.0  # for its first tick once it has the state
log = logging.getLogger("quantstrip.dashboard")


class BrowserTicker:
    def __init__(
        self,
        callback: Callable[[], None],
        interval_ms: int = 2000,
        kick_every_s: float = KICK_EVERY_S,
    ) -> None:
        self.callback = callback
        self.kick_every_s = kick_every_s
        self.play = w.Play(
            interval=interval_ms,
            min=0,
            max=10**9,
            step=1,
            repeat=True,
            layout=shared_styles.own(w.Layout, display="none"),
        )
        self.play.add_class("qs-ticker")
        self.error = w.HTML()
        self.error.add_class("qs-refresh-error")
        self.widget = w.VBox([self.play, self.error])  # what a page places
        self._settled = threading.Event()  # the browser ticks, or the ticker stopped
        self._stopped = False
        self.play.observe(self._tick, names="value")

    def _tick(self, _: object) -> None:
        self._settled.set()
        try:
            self.callback()
        except Exception as exc:  # shown and logged; the ticks go on (see the module's doc)
            log.exception("page refresh failed: %s", exc)
            when = format_time(clock.now(), date=False)  # the operator's zone, named
            self.error.value = error_html(f"refresh failed at {when}: {exc}")
        else:
            if self.error.value:
                self.error.value = ""

    def start(self) -> BrowserTicker:
        first_state.install()  # sets STATE_REQUESTED when the browser asks for the state
        self.kicker = threading.Thread(target=self._kick, name="ticker-start", daemon=True)
        self.kicker.start()
        return self

    def stop(self) -> None:
        """No more ticks: the browser's ticker stops and the kernel stops nudging it (again:
        nothing happens)."""
        if self._stopped:
            return
        self._stopped = True
        self._settled.set()
        self.play.unobserve(self._tick, names="value")
        self.play.playing = False

    def _kick(self) -> None:
        if not first_state.STATE_REQUESTED.wait(KICK_FOR_S):
            return  # no browser booted the page: its tab is gone
        deadline = clock.monotonic() + KICK_AFTER_STATE_S
        while not self._settled.is_set() and clock.monotonic() < deadline:
            self.play.playing = False
            self.play.playing = True
            self._settled.wait(self.kick_every_s)
