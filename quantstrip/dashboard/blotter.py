"""Blotter and positions: what is held, what it is worth now, what is working in the market.

Positions per account, strategy and instrument with mark, market value, unrealised PnL and
exposure (`v_unrealised_pnl`); open orders with their age, client and last broker message;
today's executions; orders refused by the risk layer or rejected by the broker today. A stale
or missing mark is flagged in red and its position left out of the totals.
"""

from __future__ import annotations

import html
from datetime import datetime

import ipywidgets as w
import pandas as pd

from quantstrip import clock, settings_file
from quantstrip.dashboard import book, roles
from quantstrip.dashboard.common import STYLE, error_html, header, table_html
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


def rows_html(
    frame: pd.DataFrame, classes: list[str] | None = None, flag_column: str | None = None
) -> str:
    """A table whose rows can carry a CSS class (stale marks), values already formatted."""
    if frame.empty:
        return "<p><i>None.</i></p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for index, row in enumerate(frame.itertuples(index=False)):
        css = f' class="{classes[index]}"' if classes and classes[index] else ""
        cells = []
        for column, value in zip(frame.columns, row, strict=True):
            cell_css = ' class="qs-flag"' if column == flag_column and value else ""
            cells.append(f"<td{cell_css}>{html.escape('' if value is None else str(value))}</td>")
        body.append(f"<tr{css}>{''.join(cells)}</tr>")
    return (
        f'<table class="qs-table qs-book"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _qty(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    number = float(value)  # type: ignore[arg-type]
    return f"{number:,.0f}" if number == int(number) else f"{number:,.4f}".rstrip("0")


def _price(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return f"{float(value):,.4f}".rstrip("0").rstrip(".")  # type: ignore[arg-type]


def positions_view(held: pd.DataFrame, group: str, now: datetime) -> tuple[pd.DataFrame, list[str]]:
    """The positions table as shown, and a CSS class per row (stale marks)."""
    if held.empty:
        return pd.DataFrame(), []
    limit = settings_file.mark_max_age_s()
    if group == "instrument":
        rows, classes = [], []
        for r in held.itertuples(index=False):
            flag = ""
            if r.mark_time is None:
                flag = "NO MARK"
            elif not r.fresh:
                flag = f"STALE ({format_age(r.mark_age_s)} old, limit {format_age(limit)})"
            rows.append(
                {
                    "account": r.account,
                    "strategy": r.strategy,
                    "client": r.client or "",
                    "symbol": r.symbol,
                    "qty": _qty(r.qty),
                    "avg cost": _price(r.avg_cost),
                    "mark": _price(r.mark_price),
                    "mark time": format_time(r.mark_time),
                    "source": r.mark_source or "",
                    "market value": money(r.market_value),
                    "unrealised PnL": money(r.unrealised_pnl),
                    "exposure": money(r.exposure),
                    "mark check": flag,
                }
            )
            classes.append("" if r.fresh else "qs-stale")
        return pd.DataFrame(rows), classes
    fresh = held[held["fresh"]]
    totals = fresh.groupby(group)[["market_value", "unrealised_pnl", "exposure"]].sum()
    stale = held[~held["fresh"]].groupby(group).size()
    counts = held.groupby(group).size()
    rows, classes = [], []
    for key in counts.index:
        row = totals.loc[key] if key in totals.index else None
        n_stale = int(stale.get(key, 0))
        rows.append(
            {
                group: key,
                "positions": int(counts[key]),
                "market value": money(row["market_value"]) if row is not None else "",
                "unrealised PnL": money(row["unrealised_pnl"]) if row is not None else "",
                "exposure": money(row["exposure"]) if row is not None else "",
                "mark check": f"{n_stale} without a fresh mark (not in the sums)"
                if n_stale
                else "",
            }
        )
        classes.append("qs-stale" if n_stale else "")
    return pd.DataFrame(rows), classes


def orders_view(orders: pd.DataFrame) -> pd.DataFrame:
    if orders.empty:
        return pd.DataFrame()
    return pd.DataFrame(
        {
            "created": [format_time(t) for t in orders["created_at"]],
            "age": [format_age(a) for a in orders["age_s"]],
            "client": orders["client"].fillna(""),
            "strategy": orders["strategy"].fillna(""),
            "account": orders["account"].fillna(""),
            "symbol": orders["symbol"],
            "side": orders["side"],
            "qty": [_qty(q) for q in orders["qty"]],
            "filled": [_qty(q) for q in orders["filled"]],
            "type": orders["type"],
            "limit": [_price(p) for p in orders["limit_price"]],
            "stop": [_price(p) for p in orders["stop_price"]],
            "status": orders["status"],
            "last broker message": orders["last_message"].fillna(""),
        }
    )


def fills_view(fills: pd.DataFrame) -> pd.DataFrame:
    if fills.empty:
        return pd.DataFrame()
    out = fills.copy()
    out["exec_time"] = [format_time(t) for t in out["exec_time"]]
    out["qty"] = [_qty(q) for q in out["qty"]]
    out["price"] = [_price(p) for p in out["price"]]
    out["notional"] = [money(v) for v in out["notional"]]
    out["commission"] = [money(v) for v in out["commission"]]
    return out.rename(columns={"exec_time": "time"}).fillna("")


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
            description="Refresh marks", tooltip="running clients price what they hold now"
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
            orders = book.open_orders(conn, now)
            fills = book.executions_today(conn, since)
            held = book.positions(conn, now)
            refused = book.refused_today(conn, since)
            rejected = book.rejected_today(conn, since)
        self.summary.value = summary_html(book.summarise(orders, fills, held, refused, rejected))
        table, classes = positions_view(held, self.group.value, now)
        self.positions.value = rows_html(table, classes, flag_column="mark check") + (
            '<p class="qs-note">Unrealised PnL = market value − cost basis (mark × quantity × '
            "multiplier, less what the open quantity cost: FIFO or average per strategy). A mark "
            f"older than {format_age(settings_file.mark_max_age_s())} is stale: its row is "
            "flagged and greyed and left out of the sums "
            "(<code>risk.marks.max_age_s</code>). Exposure = |market value|.</p>"
        )
        self.orders.value = rows_html(orders_view(orders))
        refused_rows = refused.assign(
            event_time=[format_time(t) for t in refused["event_time"]]
        ).rename(columns={"event_time": "time"})
        rejected_rows = rejected.assign(
            updated_at=[format_time(t) for t in rejected["updated_at"]]
        ).rename(columns={"updated_at": "time"})
        self.refused.value = (
            "<b>Refused by the risk layer</b>"
            + table_html(refused_rows)
            + "<b>Rejected by the broker</b>"
            + table_html(rejected_rows)
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
    return BlotterPage()
