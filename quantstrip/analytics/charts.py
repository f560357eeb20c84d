"""Altair charts of a PortfolioReport, as Vega-Lite specs with inline data.

Altair's default renderer loads Vega from a CDN; the dashboard must work with no internet. The
dashboard hands the spec to the Vega renderer bundled with Voila (`mime_bundle`); e-mails and
files get a self-contained SVG rendered on the server by vl-convert (`to_svg`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import altair as alt
import pandas as pd
import vl_convert

if TYPE_CHECKING:
    from quantstrip.analytics.metrics import PortfolioReport

WIDTH, HEIGHT = 640, 240


VEGALITE_MIME = "application/vnd.vegalite.v5+json"
# Points per time-series chart above which days are folded into weeks: a ten-year history of
# fifty strategies would otherwise ship 125,000 points to the browser.
MAX_POINTS = 20_000


def to_spec(chart: alt.TopLevelMixin) -> dict:
    """The Vega-Lite spec with its data inline (no URL to fetch, no row limit)."""
    # The charts are built here from known columns: skip Altair's slow JSON-schema validation.
    with alt.data_transformers.enable("default", max_rows=None):
        return chart.to_dict(validate=False)


def to_svg(chart: alt.TopLevelMixin) -> str:
    """A self-contained SVG rendered on the server (for e-mail and files, no browser needed)."""
    return vl_convert.vegalite_to_svg(to_spec(chart))


# JupyterLab's Vega renderer rasterises every chart to PNG after drawing it unless the output
# already has an image/png; a 1x1 placeholder spares the browser that second rendering. The
# renderer (rank 57) is still preferred over the image renderer (rank 90).
_BLANK_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg"
    "=="
)


def mime_bundle(chart: alt.TopLevelMixin) -> dict:
    """A display_data output the dashboard's browser renders with the Vega bundled in Voila.

    Rendering in the browser keeps the kernel free (vl-convert costs most of a second on first
    use); the Vega library comes from Voila's own static files, never from a CDN. SVG output and
    no "open in editor" link: nothing on the page points outside the machine.
    """
    embed = {
        "renderer": "svg",
        "actions": {"export": True, "source": False, "compiled": False, "editor": False},
    }
    return {
        "output_type": "display_data",
        "data": {VEGALITE_MIME: to_spec(chart), "image/png": _BLANK_PNG, "text/plain": "<chart>"},
        "metadata": {VEGALITE_MIME: {"embed_options": embed}},
    }


def _long(frame: pd.DataFrame, value: str, fold: str = "last") -> pd.DataFrame:
    if len(frame) * max(1, len(frame.columns)) > MAX_POINTS and isinstance(
        frame.index, pd.DatetimeIndex
    ):
        frame = frame.resample("W-FRI").agg(fold)
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
    data = _long(report.drawdown, "drawdown", fold="min")
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
