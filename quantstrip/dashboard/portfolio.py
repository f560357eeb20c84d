"""Portfolio report: horizon and strategy selectors, charts and per-strategy statistics."""

from __future__ import annotations

import threading

import ipywidgets as w
import pandas as pd

from quantstrip.analytics import PortfolioReport, portfolio_report
from quantstrip.analytics.connection import connect
from quantstrip.dashboard.common import error_html, header, table_html

HORIZONS = [
    ("All history", "all"),
    ("Year to date", "ytd"),
    ("Last 12 months", "1y"),
    ("Last 3 months", "3m"),
]
COLUMNS = [
    "net_pnl",
    "gross_pnl",
    "commission",
    "sharpe",
    "sortino",
    "max_drawdown",
    "max_drawdown_pct",
    "trades",
    "win_rate",
    "avg_win",
    "avg_loss",
    "profit_factor",
    "return_on_capital",
]


def strategy_names() -> list[str]:
    conn = connect()
    try:
        return [r[0] for r in conn.execute("SELECT name FROM strategies ORDER BY name").fetchall()]
    finally:
        conn.close()


class PortfolioPage(w.VBox):
    def __init__(self) -> None:
        self.horizon = w.Dropdown(options=HORIZONS, value="all", description="Horizon")
        names = strategy_names()
        self.strategies = w.SelectMultiple(
            options=names,
            value=tuple(names),
            description="Strategies",
            rows=min(6, max(2, len(names))),
        )
        self.frequency = w.ToggleButtons(
            options=[("Daily", "D"), ("Weekly", "W"), ("Monthly", "M")], value="D"
        )
        self.apply = w.Button(description="Update", button_style="primary")
        self.apply.add_class("qs-update")
        self.stats = w.HTML()
        self.stats.add_class("qs-stats")
        self.charts = w.HTML()
        self.periods = w.HTML()
        self.apply.on_click(lambda _: self.refresh())
        super().__init__(
            [
                header("Portfolio report"),
                w.HBox([self.horizon, self.strategies, w.VBox([self.frequency, self.apply])]),
                w.HTML("<h3>Statistics</h3>"),
                self.stats,
                self.charts,
                w.HTML("<h3>Net PnL per period</h3>"),
                self.periods,
            ]
        )
        self.refresh()

    def refresh(self) -> None:
        chosen = list(self.strategies.value)
        if not chosen:
            self.stats.value = error_html("choose at least one strategy")
            return
        try:
            report = portfolio_report(
                horizon=self.horizon.value, strategies=chosen, frequency=self.frequency.value
            )
        except Exception as exc:
            self.stats.value = error_html(f"report failed: {exc}")
            return
        stats = report.stats[COLUMNS].reset_index()
        for column in ("max_drawdown_pct", "win_rate", "return_on_capital"):
            stats[column] = stats[column].map(lambda v: "" if pd.isna(v) else f"{v:.1%}")
        self.stats.value = table_html(stats)
        # Charts take a second or two (Altair + vl-convert): statistics show first, charts follow.
        self.charts.value = "<i>rendering charts…</i>"
        threading.Thread(target=self._render_charts, args=(report,), daemon=True).start()
        periods = report.resampled_pnl().tail(24).rename_axis(index="date", columns=None)
        periods = periods.reset_index()
        periods["date"] = periods["date"].dt.date
        self.periods.value = table_html(periods)

    def _render_charts(self, report: PortfolioReport) -> None:
        try:
            svgs = report.chart_svgs()
        except Exception as exc:
            self.charts.value = error_html(f"charts failed: {exc}")
            return
        self.charts.value = "".join(
            f'<div class="qs-chart qs-chart-{k}">{v}</div>' for k, v in svgs.items()
        )


def page() -> PortfolioPage:
    return PortfolioPage()
