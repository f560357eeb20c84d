"""Blotter and positions: what is held, what it is worth now, what is working in the market.

Positions per account, strategy and instrument with mark, market value, unrealised PnL and
exposure (`v_unrealised_pnl`); open orders with their age, client and last broker message;
today's executions; orders refused by the risk layer or rejected by the broker today. A stale
or missing mark is flagged in red and its position left out of the totals.
"""

from __future__ import annotations

import html
import math
from datetime import datetime
from typing import Any

import ipywidgets as w

from quantstrip import clock, settings_file
from quantstrip.dashboard import book, roles, shared_styles
from quantstrip.dashboard.common import STYLE, error_html, header
from quantstrip.dashboard.display import Mode, format_age, format_time, money, operator_zone

GROUPS = [("Instrument", "instrument"), ("Strategy", "strategy"), ("Account", "account")]
BLOTTER_STYLE = """
<style>
.qs-book td.qs-flag { color: #b00020; font-weight: bold; }
.qs-book tr.qs-stale td { background: #fff2f2; color: #777; font-style: italic; }
.qs-summary { font-size: 14px; }
.qs-summary b { margin-right: 4px; }
.qs-note { color: #555; font-size: 12px; }
</style>
"""


Table = tuple[list[str], list[dict[str, Any]]]  # columns, rows (values as shown)


def rows_html(
    table: Table,
    classes: list[str] | None = None,
    flag_column: str | None = None,
    css: str = "qs-table qs-book",
) -> str:
    """A table whose rows can carry a CSS class (stale marks), values already formatted."""
    columns, rows = table
    if not rows:
        return "<p><i>None.</i></p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for index, row in enumerate(rows):
        css = f' class="{classes[index]}"' if classes and classes[index] else ""
        cells = []
        for column in columns:
            value = row.get(column)
            cell_css = ' class="qs-flag"' if column == flag_column and value else ""
            cells.append(f"<td{cell_css}>{html.escape(_text(value))}</td>")
        body.append(f"<tr{css}>{''.join(cells)}</tr>")
    return (
        f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text(value: object) -> str:
    """A cell as the other pages' tables show it: floats to the cent, nothing for no value."""
    if _missing(value):
        return ""
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def _qty(value: object) -> str:
    if _missing(value):
        return ""
    number = float(value)  # type: ignore[arg-type]
    return f"{number:,.0f}" if number == int(number) else f"{number:,.4f}".rstrip("0")


def _price(value: object) -> str:
    if _missing(value):
        return ""
    return f"{float(value):,.4f}".rstrip("0").rstrip(".")  # type: ignore[arg-type]


def _sum(rows: list[dict[str, Any]], column: str) -> float:
    return float(sum(r[column] for r in rows if not _missing(r[column])))


def positions_view(
    held: list[dict[str, Any]], group: str, now: datetime
) -> tuple[Table, list[str]]:
    """The positions table as shown, and a CSS class per row (stale marks)."""
    if not held:
        return ([], []), []
    limit = settings_file.mark_max_age_s()
    if group == "instrument":
        rows, classes = [], []
        for r in held:
            flag = ""
            if r["mark_time"] is None:
                flag = "NO MARK"
            elif not r["fresh"]:
                flag = f"STALE ({format_age(r['mark_age_s'])} old, limit {format_age(limit)})"
            rows.append(
                {
                    "account": r["account"],
                    "strategy": r["strategy"],
                    "client": r["client"] or "",
                    "symbol": r["symbol"],
                    "qty": _qty(r["qty"]),
                    "avg cost": _price(r["avg_cost"]),
                    "mark": _price(r["mark_price"]),
                    "mark time": format_time(r["mark_time"]),
                    "source": r["mark_source"] or "",
                    "market value": money(r["market_value"]),
                    "unrealised PnL": money(r["unrealised_pnl"]),
                    "exposure": money(r["exposure"]),
                    "mark check": flag,
                }
            )
            classes.append("" if r["fresh"] else "qs-stale")
        return (list(rows[0]), rows), classes
    groups: dict[Any, list[dict[str, Any]]] = {}
    for r in held:
        if not _missing(r[group]):  # as a group-by does: a position without the key is not shown
            groups.setdefault(r[group], []).append(r)
    rows, classes = [], []
    for key in sorted(groups):
        members = groups[key]
        fresh = [r for r in members if r["fresh"]]
        n_stale = len(members) - len(fresh)
        rows.append(
            {
                group: key,
                "positions": len(members),
                "market value": money(_sum(fresh, "market_value")) if fresh else "",
                "unrealised PnL": money(_sum(fresh, "unrealised_pnl")) if fresh else "",
                "exposure": money(_sum(fresh, "exposure")) if fresh else "",
                "mark check": f"{n_stale} without a fresh mark (not in the sums)"
                if n_stale
                else "",
            }
        )
        classes.append("qs-stale" if n_stale else "")
    columns = [group, "positions", "market value", "unrealised PnL", "exposure", "mark check"]
    return (columns, rows), classes


def orders_view(orders: book.Rows) -> Table:
    rows = [
        {
            "created": format_time(o["created_at"]),
            "age": format_age(o["age_s"]),
            "client": o["client"] or "",
            "strategy": o["strategy"] or "",
            "account": o["account"] or "",
            "symbol": o["symbol"],
            "side": o["side"],
            "qty": _qty(o["qty"]),
            "filled": _qty(o["filled"]),
            "type": o["type"],
            "limit": _price(o["limit_price"]),
            "stop": _price(o["stop_price"]),
            "status": o["status"],
            "last broker message": o["last_message"] or "",
        }
        for o in orders.rows
    ]
    return (list(rows[0]) if rows else []), rows


def fills_view(fills: book.Rows) -> Table:
    shown = {
        "exec_time": format_time,
        "qty": _qty,
        "price": _price,
        "notional": money,
        "commission": money,
    }
    rows = []
    for fill in fills.rows:
        row = {}
        for column in fills.columns:
            value = fill[column]
            text = shown[column](value) if column in shown else value  # type: ignore[operator]
            row["time" if column == "exec_time" else column] = "" if _missing(text) else text
        rows.append(row)
    columns = ["time" if c == "exec_time" else c for c in fills.columns]
    return columns, rows


def events_html(found: book.Rows, time_column: str) -> str:
    """Refusals and rejections: their time in the operator's zone, every other column as is."""
    if not found.rows:
        return "<p><i>No rows.</i></p>"
    columns = ["time" if c == time_column else c for c in found.columns]
    rows = [
        {("time" if c == time_column else c): row[c] for c in found.columns} for row in found.rows
    ]
    for row in rows:
        row["time"] = format_time(row["time"])
    return rows_html((columns, rows), css="qs-table")


def summary_html(summary: book.Summary) -> str:
    stale = (
        f' <span class="qs-error">{summary.stale} position(s) without a fresh mark, left out'
        " of the sums</span>"
        if summary.stale
        else ""
    )
    return (
        '<p class="qs-summary">'
        f"<b>{summary.positions}</b> positions · unrealised PnL <b>{money(summary.unrealised)}"
        f"</b> · market value <b>{money(summary.market_value)}</b> · gross exposure "
        f"<b>{money(summary.exposure)}</b> · <b>{summary.open_orders}</b> open orders · "
        f"<b>{summary.fills_today}</b> fills today · <b>{summary.refused_today}</b> refused, "
        f"<b>{summary.rejected_today}</b> rejected today{stale}</p>"
    )


def controls_html() -> str:
    from quantstrip.brokers.risk import controls

    active = [c for c in controls.all_controls() if c.state.value != "active"]
    if not active:
        return '<p class="qs-ok qs-risk-state">Trading active for every client.</p>'
    items = "".join(
        f"<li><b>{'ALL CLIENTS' if c.scope == controls.ALL else html.escape(c.scope)}</b>: "
        f"{html.escape(c.state.value.replace('_', ' '))} since {format_time(c.updated_at)}"
        f" by {html.escape(c.set_by)}{': ' + html.escape(c.reason) if c.reason else ''}</li>"
        for c in active
    )
    return f'<div class="qs-error qs-risk-state"><ul>{items}</ul></div>'


class BlotterPage(w.VBox):
    def __init__(self) -> None:
        names = list(book.books())
        self.book = w.Dropdown(options=names, value=names[0], description="Book")
        self.book.add_class("qs-book-choice")
        self.group = w.Dropdown(options=GROUPS, value="instrument", description="Positions by")
        self.refresh_button = w.Button(description="Refresh", button_style="primary")
        self.refresh_button.add_class("qs-refresh")
        self.marks_button = w.Button(
            description="Refresh marks",
            tooltip="running clients price what they hold now",
            layout=shared_styles.own(w.Layout),  # hidden for viewers
        )
        self.marks_button.add_class("qs-refresh-marks")
        self.head = w.VBox()
        self._head_mode: object = "unset"
        self.state = w.HTML()
        self.message = w.HTML()
        self.summary = w.HTML()
        self.summary.add_class("qs-blotter-summary")
        self.positions = w.HTML()
        self.positions.add_class("qs-positions")
        self.orders = w.HTML()
        self.orders.add_class("qs-open-orders")
        self.fills = w.HTML()
        self.fills.add_class("qs-fills")
        self.refused = w.HTML()
        self.refused.add_class("qs-refused")
        self.stamp = w.HTML()
        self.book.observe(lambda _: self.refresh(), names="value")
        self.group.observe(lambda _: self.refresh(), names="value")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.marks_button.on_click(lambda _: self.refresh_marks())
        if roles.is_viewer():  # asking clients for prices is the operator's (refused below too)
            self.marks_button.layout.display = "none"
        super().__init__(
            [
                w.HTML(STYLE + BLOTTER_STYLE),
                self.head,
                w.HBox([self.book, self.group, self.refresh_button, self.marks_button]),
                self.state,
                self.message,
                self.summary,
                w.HTML("<h3>Positions</h3>"),
                self.positions,
                w.HTML("<h3>Open orders</h3>"),
                self.orders,
                w.HTML("<h3>Refused and rejected today</h3>"),
                self.refused,
                w.HTML("<h3>Today's executions</h3>"),
                self.fills,
                self.stamp,
            ]
        )
        self.refresh()

    def refresh(self) -> None:
        mode = Mode.SIMULATION if self.book.value == "simulation" else None
        if mode != self._head_mode:  # the simulation book is SIMULATION whatever else runs
            self.head.children = [header("Blotter and positions", mode)]
            self._head_mode = mode
        now = clock.now()
        since = book.day_start(now)
        self.state.value = controls_html()
        with book.reading(self.book.value) as conn:
            if conn is None:
                self.summary.value = error_html(f"no {self.book.value} database yet")
                return
            orders = book.open_order_rows(conn, now)
            fills = book.execution_rows(conn, since)
            held = book.position_rows(conn, now)
            refused = book.refused_rows(conn, since)
            rejected = book.rejected_rows(conn, since)
        self.summary.value = summary_html(
            book.summarise_rows(orders, fills, held, refused, rejected)
        )
        table, classes = positions_view(held, self.group.value, now)
        self.positions.value = rows_html(table, classes, flag_column="mark check") + (
            '<p class="qs-note">Unrealised PnL = market value − cost basis (mark × quantity × '
            "multiplier, less what the open quantity cost: FIFO or average per strategy). A mark "
            f"older than {format_age(settings_file.mark_max_age_s())} is stale: its row is "
            "flagged and greyed and left out of the sums "
            "(<code>risk.marks.max_age_s</code>). Exposure = |market value|.</p>"
        )
        self.orders.value = rows_html(orders_view(orders))
        self.refused.value = (
            "<b>Refused by the risk layer</b>"
            + events_html(refused, "event_time")
            + "<b>Rejected by the broker</b>"
            + events_html(rejected, "updated_at")
        )
        self.fills.value = rows_html(fills_view(fills)) + (
            f'<p class="qs-note">Today: since {format_time(since)} (day boundary in '
            f"{html.escape(book.day_zone())}, <code>risk.day_zone</code>).</p>"
        )
        self.stamp.value = f"<small>updated {format_time(now, operator_zone())}</small>"

    def refresh_marks(self) -> None:
        from quantstrip.brokers.risk import operator

        self.message.value = "<i>asking running clients for prices…</i>"
        try:
            roles.require_operator("refreshing marks")
            outcome = operator.refresh_marks(by="dashboard", wait_s=15)
            self.message.value = f"<pre>{html.escape(outcome.text)}</pre>"
        except Exception as exc:
            self.message.value = error_html(f"marks refresh failed: {exc}")
        self.refresh()


def page() -> BlotterPage:
    shared_styles.install()  # default layouts and styles shared: shared_styles.py
    return BlotterPage()
