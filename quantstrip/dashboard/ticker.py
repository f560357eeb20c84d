"""Periodic refresh driven by the browser, so that a closed tab costs nothing.

A refresh thread inside the page's kernel kept the kernel busy forever: Jupyter culls only idle
kernels, and every refresh (a widget update) is activity, so each tab ever opened held a kernel
(about 110 MB) until the server stopped. An ipywidgets `Play` ticks in the browser instead: while
the tab is open it asks the kernel to refresh every `interval_ms`; once the tab is closed nothing
asks, the kernel goes idle and the server's culling (jupyter_config: cull_idle_timeout) ends it.

A `Play` starts ticking only when its view sees `playing` change from false to true, and the page's
views are created after the page's cell has run. So the kernel nudges it (false, then true) once a
second until the first tick arrives, for at most `KICK_FOR_S`: a tab closed before it rendered
leaves its kernel idle after that, like any other.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

import ipywidgets as w

from quantstrip import clock

KICK_EVERY_S = 1.0
KICK_FOR_S = 120.0


class BrowserTicker:
    def __init__(
        self,
        callback: Callable[[], None],
        interval_ms: int = 2000,
        kick_every_s: float = KICK_EVERY_S,
    ) -> None:
        self.callback = callback
        self.kick_every_s = kick_every_s
        self.widget = w.Play(interval=interval_ms, min=0, max=10**9, step=1, repeat=True)
        self.widget.layout.display = "none"
        self.widget.add_class("qs-ticker")
        self._settled = threading.Event()  # the browser ticks, or the ticker stopped
        self._stopped = False
        self.widget.observe(self._tick, names="value")

    def _tick(self, _: object) -> None:
        self._settled.set()
        with contextlib.suppress(Exception):  # a failed refresh must not stop the ticks
            self.callback()

    def start(self) -> BrowserTicker:
        threading.Thread(target=self._kick, name="ticker-start", daemon=True).start()
        return self

    def stop(self) -> None:
        """No more ticks: the browser's ticker stops and the kernel stops nudging it (again:
        nothing happens)."""
        if self._stopped:
            return
        self._stopped = True
        self._settled.set()
        self.widget.unobserve(self._tick, names="value")
        self.widget.playing = False

    def _kick(self) -> None:
        deadline = clock.monotonic() + KICK_FOR_S
        while not self._settled.is_set() and clock.monotonic() < deadline:
            self.widget.playing = False
            self.widget.playing = True
            self._settled.wait(self.kick_every_s)
