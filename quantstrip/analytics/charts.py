"""Altair charts of a PortfolioReport, rendered to SVG by vl-convert.

Altair's default renderer loads vega from a CDN; the dashboard must work with no internet, so
every chart is turned into a self-contained SVG on the server instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import altair as alt
import pandas as pd
import vl_convert

if TYPE_CHECKING:
    from quantstrip.analytics.metrics import PortfolioReport

WIDTH, HEIGHT = 640, 240


def to_svg(chart: alt.TopLevelMixin) -> str:
    # The charts are built here from known columns: skip Altair's slow JSON-schema validation.
    return vl_convert.vegalite_to_svg(chart.to_json(validate=False))


def _long(frame: pd.DataFrame, value: str) -> pd.DataFrame:
    flat = frame.rename_axis(index="date", columns=None).reset_index()
    out = flat.melt(id_vars="date", var_name="strategy", value_name=value)
    out["date"] = pd.to_datetime(out["date"])
    return out


def equity_chart(report: PortfolioReport) -> alt.Chart:
    data = _long(report.equity, "equity")
    return (
        alt.Chart(data, title="Equity")
        .mark_line()
        .encode(x="date:T", y=alt.Y("equity:Q", scale=alt.Scale(zero=False)), color="strategy:N")
        .properties(width=WIDTH, height=HEIGHT)
    )


def drawdown_chart(report: PortfolioReport) -> alt.Chart:
    data = _long(report.drawdown, "drawdown")
    return (
        alt.Chart(data, title="Drawdown")
        .mark_area(opacity=0.5)
        .encode(x="date:T", y=alt.Y("drawdown:Q", stack=None), color="strategy:N")
        .properties(width=WIDTH, height=HEIGHT)
    )


def return_histogram(report: PortfolioReport, column: str = "Portfolio") -> alt.Chart:
    returns = report.returns[column]
    data = pd.DataFrame({"return": returns[returns != 0]})
    return (
        alt.Chart(data, title=f"Daily returns ({column}, days with fills)")
        .mark_bar()
        .encode(x=alt.X("return:Q", bin=alt.Bin(maxbins=40)), y="count()")
        .properties(width=WIDTH, height=HEIGHT)
    )


def strategy_bars(report: PortfolioReport) -> alt.Chart:
    stats = report.stats.drop(index="Portfolio", errors="ignore").reset_index()
    return (
        alt.Chart(stats[["strategy", "net_pnl"]], title="Net PnL by strategy")
        .mark_bar()
        .encode(x="net_pnl:Q", y=alt.Y("strategy:N", sort="-x"))
        .properties(width=WIDTH, height=max(80, 28 * len(stats)))
    )
