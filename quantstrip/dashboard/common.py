"""Pieces every page shares: header, tables, error boxes, CSV download, a periodic refresher,
and the one way a page reads the ledger."""

from __future__ import annotations

import base64
import contextlib
import contextvars
import html
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import ipywidgets as w

from quantstrip.paths import workspace

if TYPE_CHECKING:  # pandas is imported by the pages that show frames, not by every page
    import pandas as pd

STYLE = """
<style>
.qs-table { border-collapse: collapse; font-size: 13px; }
.qs-table th, .qs-table td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: right; }
.qs-table th { background: #f3f5f7; }
.qs-error { color: #a40000; white-space: pre-wrap; font-family: monospace; }
.qs-ok { color: #0a6b0a; }
.qs-nav a { margin-right: 12px; }
/* wide statistics tables scroll inside the page instead of being cut off */
.qs-stats, .qs-stats .widget-html-content { max-width: 100%; overflow-x: auto; }
</style>
"""


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


# SQLite authorizer codes a page's reads need; anything else (a write, ATTACH, a pragma that
# sets something, VACUUM INTO's attach) is denied by the engine.
_READ_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
_READ_PRAGMAS = frozenset({"busy_timeout", "foreign_keys", "table_info", "user_version"})
_open_reader: contextvars.ContextVar[sqlite3.Connection | None] = contextvars.ContextVar(
    "page_reader", default=None
)


def _reads_only(action: int, arg1: str | None, arg2: str | None, *_: object) -> int:
    if action in _READ_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and arg1 in _READ_PRAGMAS and arg2 is None:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


@contextlib.contextmanager
def read_ledger(path: Path | None = None) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection to the ledger for one refresh (None while there is no database).

    Pages never write and never migrate (migrations run at `init`, `up` and daemon start): the
    file is opened `mode=ro` and an authorizer denies everything but reads. Nested uses in one
    thread share the outer connection, so a whole refresh costs one open.
    """
    outer = _open_reader.get()
    if outer is not None and path is None:
        yield outer
        return
    from quantstrip.db.connection import connect

    target = path or workspace().database
    if not target.exists():
        yield None
        return
    conn = connect(target, read_only=True)
    conn.set_authorizer(_reads_only)
    token = _open_reader.set(conn) if path is None else None
    try:
        yield conn
    finally:
        if token is not None:
            _open_reader.reset(token)
        conn.close()
