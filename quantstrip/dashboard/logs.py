"""Live log view: per-client tail that follows new lines, with level filter and search. Times in
the operator's zone; the follow refresh ticks in the browser (`ticker`), so a closed tab's
kernel is culled."""

from __future__ import annotations

import html

import ipywidgets as w

from quantstrip import logger
from quantstrip.dashboard import shared_styles
from quantstrip.dashboard.common import header
from quantstrip.dashboard.display import format_time
from quantstrip.dashboard.ticker import BrowserTicker

LEVEL_COLOURS = {"ERROR": "#a40000", "CRITICAL": "#a40000", "WARNING": "#9a6700"}


def render(records: list[logger.LogRecord]) -> str:
    lines = []
    for r in records:
        colour = LEVEL_COLOURS.get(r.level, "#222")
        lines.append(
            f'<div style="color:{colour}">{format_time(r.time)} {r.level} '
            f"{html.escape(r.module)}: {html.escape(r.message)}</div>"
        )
    style = "font-family:monospace;white-space:pre-wrap"
    return f'<div class="qs-log" style="{style}">{"".join(lines)}</div>'


class LogsPage(w.VBox):
    def __init__(self, refresh_ms: int = 2000) -> None:
        clients = logger.clients() or ["daemon"]
        self.client = w.Dropdown(options=clients, description="Client")
        self.level = w.Dropdown(
            options=["DEBUG", "INFO", "WARNING", "ERROR"], value="DEBUG", description="Level"
        )
        self.search = w.Text(description="Search", placeholder="text")
        self.follow = w.Checkbox(description="follow", value=True)
        self.view = w.HTML()
        for control in (self.client, self.level, self.search):
            control.observe(lambda _: self.refresh(), names="value")
        self.ticker = BrowserTicker(self._tick, refresh_ms)
        super().__init__(
            [
                header("Logs"),
                w.HBox([self.client, self.level, self.search, self.follow]),
                self.view,
                self.ticker.widget,
            ]
        )
        self.refresh()
        self.ticker.start()

    def _tick(self) -> None:
        if self.follow.value:
            self.refresh()

    def refresh(self) -> None:
        options = logger.clients()
        if options and list(options) != list(self.client.options):
            current = self.client.value
            self.client.options = options
            if current in options:
                self.client.value = current
        records = logger.tail(
            str(self.client.value),
            lines=300,
            level=self.level.value,
            text=self.search.value or None,
        )
        self.view.value = render(records) if records else "<i>no matching log lines</i>"


def page() -> LogsPage:
    shared_styles.install()  # default layouts and styles shared: shared_styles.py
    return LogsPage()
