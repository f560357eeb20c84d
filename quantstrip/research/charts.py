"""Altair charts of a sweep: a metric over two parameters, and the best runs' equity curves.

Specs with inline data, drawn in the dashboard's browser by the Vega bundled with Voila
(`quantstrip.analytics.charts.mime_bundle`), so nothing is fetched from the internet.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from quantstrip.research.metrics import LOWER_IS_BETTER

WIDTH, HEIGHT = 560, 280


def heatmap(frame: pd.DataFrame, x: str, y: str, metric: str) -> alt.Chart:
    """`frame`: one row per (x, y) with the metric (see `Sweep.grid`)."""
    scheme = "redyellowgreen" if metric not in LOWER_IS_BETTER else "greenred"
    base = alt.Chart(frame, title=f"{metric} by {x} and {y}").encode(
        x=alt.X(f"{x}:O", title=x), y=alt.Y(f"{y}:O", title=y, sort="descending")
    )
    cells = base.mark_rect().encode(
        color=alt.Color(f"{metric}:Q", scale=alt.Scale(scheme=scheme), title=metric),
        tooltip=[x, y, alt.Tooltip(f"{metric}:Q", format=".3f")],
    )
    labels = base.mark_text(fontSize=11).encode(text=alt.Text(f"{metric}:Q", format=".2f"))
    return (cells + labels).properties(width=WIDTH, height=HEIGHT)


def equity_overlay(curves: pd.DataFrame, labels: dict[str, str]) -> alt.Chart:
    """`curves`: key, date, equity; `labels`: key -> the run's legend text."""
    data = curves.assign(run=curves["key"].map(labels))[["run", "date", "equity"]]
    return (
        alt.Chart(data, title="Equity of the best runs")
        .mark_line()
        .encode(
            x="date:T",
            y=alt.Y("equity:Q", scale=alt.Scale(zero=False)),
            color=alt.Color("run:N", sort=list(labels.values())),
        )
        .properties(width=WIDTH + 120, height=HEIGHT)
    )
