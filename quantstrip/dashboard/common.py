"""Pieces every page shares: header, tables, error boxes, CSV download, a periodic refresher,
and the one way a page reads the ledger."""

from __future__ import annotations

import base64
import html
from typing import TYPE_CHECKING

import ipywidgets as w

from quantstrip.dashboard.ledger import read_ledger
from quantstrip.dashboard.style import STYLE

if TYPE_CHECKING:  # pandas is imported by the pages that show frames, not by every page
    import pandas as pd

__all__ = ["STYLE", "read_ledger"]  # kept here for the pages that import them with the widgets


def nav() -> w.HTML:
    from quantstrip.dashboard.roles import pages

    links = " ".join(
        f'<a href="{name}.ipynb">{html.escape(title)}</a>' for name, title in pages().items()
    )
    return w.HTML(f'{STYLE}<div class="qs-nav"><a href="home.ipynb">Home</a> {links}</div>')


def header(title: str, mode: object = None) -> w.VBox:
    """Navigation, then the title with the trading-mode badge (every page shows it)."""
    from quantstrip.dashboard.display import page_badge

    try:
        badge = page_badge(mode)  # type: ignore[arg-type]
    except Exception as exc:  # the page still works; say why the badge is missing
        badge = error_html(f"mode unknown: {exc}")
    return w.VBox([nav(), w.HTML(f"<h2>{html.escape(title)} {badge}</h2>")])


def table_html(frame: pd.DataFrame | None, max_rows: int = 500) -> str:
    if frame is None or frame.empty:
        return "<p><i>No rows.</i></p>"
    shown = frame.head(max_rows)
    more = f"<p>{len(frame) - max_rows} more rows not shown.</p>" if len(frame) > max_rows else ""
    return (
        shown.to_html(classes="qs-table", index=False, na_rep="", float_format="{:,.2f}".format)
        + more
    )


def error_html(message: str) -> str:
    return f'<div class="qs-error">{html.escape(message)}</div>'


def csv_link(frame: pd.DataFrame, filename: str = "result.csv") -> str:
    """A download link carrying the CSV itself (no server round trip, works offline)."""
    payload = base64.b64encode(frame.to_csv(index=False).encode()).decode()
    return (
        f'<a download="{html.escape(filename)}" href="data:text/csv;base64,{payload}">'
        f"Download CSV ({len(frame)} rows)</a>"
    )


class SortableTable(w.VBox):
    """A results table with a sort column and direction, and a CSV export link."""

    def __init__(self, frame: pd.DataFrame | None = None, filename: str = "result.csv") -> None:
        self.filename = filename
        self.frame = frame  # None until the first results (pandas loads with them)
        self.sort_by = w.Dropdown(description="Sort by", options=["(none)"])
        self.descending = w.Checkbox(description="descending", value=False)
        self.body = w.HTML(table_html(None))
        self.download = w.HTML()
        self.sort_by.observe(lambda _: self.render(), names="value")
        self.descending.observe(lambda _: self.render(), names="value")
        super().__init__([w.HBox([self.sort_by, self.descending]), self.download, self.body])
        if frame is not None:
            self.set(frame)

    def set(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.sort_by.options = ["(none)", *map(str, frame.columns)]
        self.sort_by.value = "(none)"
        self.render()

    def render(self) -> None:
        frame = self.frame
        if frame is None:
            return
        if self.sort_by.value and self.sort_by.value != "(none)" and not frame.empty:
            frame = frame.sort_values(self.sort_by.value, ascending=not self.descending.value)
        self.body.value = table_html(frame)
        self.download.value = csv_link(frame, self.filename) if not frame.empty else ""
