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

VEGALITE_MIME = "application/vnd.vegalite.v5+json"
# Points per time-series chart above which days are folded into weeks, then months: a ten-year
# history of fifty strategies would otherwise ship 130,000 points to the browser (and 26,000 as
# weeks: 2.3 MB of JSON per chart, seconds of the kernel's time at 1M executions).
MAX_POINTS = 20_000
FOLDS = ("W-FRI", "ME")


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
    for rule in FOLDS:
        if len(frame) * max(1, len(frame.columns)) <= MAX_POINTS or not isinstance(
            frame.index, pd.DatetimeIndex
        ):
            break
        frame = frame.resample(rule).agg(fold)
    flat = frame.rename_axis(index="date", columns=None).reset_index()
    out = flat.melt(id_vars="date", var_name="strategy", value_name=value)
    out["date"] = pd.to_datetime(out["date"])
    return out


# Readable at 1280 x 800: one panel per series, each with its own scale, so a 100,000 strategy
# is not flattened by the 1,000,000 portfolio beside it; dates show their year.
WIDTH, PANEL_HEIGHT = 820, 110
DATE_AXIS = alt.Axis(format="%b %Y", labelAngle=0, title=None, labelOverlap=True)
MONEY = ",.2f"


def _series_order(report: PortfolioReport, frame: pd.DataFrame) -> list[str]:
    """The portfolio first, then the strategies in the report's order."""
    names = [str(c) for c in frame.columns]
    return sorted(names, key=lambda n: (n != "Portfolio", names.index(n)))


def _panels(
    report: PortfolioReport,
    frame: pd.DataFrame,
    value: str,
    title: str,
    mark: str,
    fold: str = "last",
) -> alt.FacetChart:
    data = _long(frame, value, fold)
    tooltip = [
        alt.Tooltip("date:T", title="date", format="%Y-%m-%d"),
        alt.Tooltip("strategy:N"),
        alt.Tooltip(f"{value}:Q", format=MONEY),
    ]
    base = alt.Chart(data).encode(
        x=alt.X("date:T", axis=DATE_AXIS),
        y=alt.Y(
            f"{value}:Q",
            scale=alt.Scale(zero=False),
            title=None,
            axis=alt.Axis(format="~s", tickCount=4),
        ),
    )
    drawn = base.mark_area(opacity=0.5) if mark == "area" else base.mark_line()
    # Invisible points carry the tooltip: hovering anywhere near a day shows its value.
    hover = base.mark_point(opacity=0, size=60).encode(tooltip=tooltip)
    return (
        alt.layer(drawn, hover)
        .properties(width=WIDTH, height=PANEL_HEIGHT)
        .facet(
            row=alt.Row(
                "strategy:N",
                sort=_series_order(report, frame),
                header=alt.Header(title=None, labelAngle=0, labelAlign="left", labelFontSize=12),
            ),
            title=title,
        )
        .resolve_scale(y="independent")
    )


def equity_chart(report: PortfolioReport, title: str = "Equity") -> alt.FacetChart:
    return _panels(report, report.equity, "equity", title, "line")


def drawdown_chart(report: PortfolioReport) -> alt.FacetChart:
    return _panels(report, report.drawdown, "drawdown", "Drawdown", "area", fold="min")


def return_histogram(report: PortfolioReport, column: str = "Portfolio") -> alt.Chart:
    returns = report.returns[column]
    data = pd.DataFrame({"return": returns[returns != 0]})
    return (
        alt.Chart(data, title=f"Daily returns ({column}, days with PnL)")
        .mark_bar()
        .encode(
            x=alt.X("return:Q", bin=alt.Bin(maxbins=40), axis=alt.Axis(format="%")),
            y=alt.Y("count()", title="days"),
            tooltip=[
                alt.Tooltip("return:Q", bin=alt.Bin(maxbins=40), format=".2%", title="return"),
                alt.Tooltip("count()", title="days"),
            ],
        )
        .properties(width=WIDTH, height=200)
    )


def strategy_bars(report: PortfolioReport, column: str = "net_pnl") -> alt.Chart:
    stats = report.stats.drop(index="Portfolio", errors="ignore").reset_index()
    label = "Total PnL" if column == "total_pnl" else "Net PnL"
    return (
        alt.Chart(stats[["strategy", column]], title=f"{label} by strategy")
        .mark_bar()
        .encode(
            x=alt.X(f"{column}:Q", title=label, axis=alt.Axis(format="~s")),
            y=alt.Y("strategy:N", sort="-x", title=None),
            color=alt.condition(f"datum.{column} < 0", alt.value("#b00020"), alt.value("#1f5fa8")),
            tooltip=[alt.Tooltip("strategy:N"), alt.Tooltip(f"{column}:Q", format=MONEY)],
        )
        .properties(width=WIDTH, height=max(80, 28 * len(stats)))
    )
