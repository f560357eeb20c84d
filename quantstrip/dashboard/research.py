"""Research page: sweeps, their runs sortable by any metric, a heatmap of a metric over two
parameters, the best runs' equity curves, robustness notes, cancel, and promote a run.

Thin over `quantstrip.research` (results from the sweep's Parquet files); it writes nothing
but a cancel request and, through `promote_run`, a client's folder.
"""

from __future__ import annotations

import html
import threading
from typing import Any

import ipywidgets as w
import pandas as pd

from quantstrip.dashboard import shared_styles
from quantstrip.dashboard.common import SortableTable, error_html, header, table_html
from quantstrip.dashboard.portfolio import _after_cell, _skip_iri_grammar
from quantstrip.research.metrics import METRICS
from quantstrip.research.results import Sweep, sweeps

TOP_N = 5
RUN_COLUMNS = ["number", "status", *METRICS, "duration_s", "error"]


def _label(run: pd.Series, parameters: list[str], metric: str) -> str:
    values = " ".join(f"{p}={run[p]}" for p in parameters)
    figure = run.get(metric)
    shown = "" if pd.isna(figure) else f" ({metric} {figure:.3g})"
    return f"#{run['number']} {values}{shown}"


class ResearchPage(w.VBox):
    def __init__(self) -> None:
        self.sweep: Sweep | None = None
        self.listing = w.HTML()
        self.listing.add_class("qs-research-sweeps")
        self.chooser = w.Dropdown(
            description="Sweep", layout=shared_styles.fixed(w.Layout, width="420px")
        )
        self.chooser.add_class("qs-research-sweep")
        self.metric = w.Dropdown(description="Metric", options=list(METRICS), value="sharpe")
        self.metric.add_class("qs-research-metric")
        self.x = w.Dropdown(description="X")
        self.y = w.Dropdown(description="Y")
        self.top = w.BoundedIntText(value=TOP_N, min=1, max=50, description="Top N")
        self.reload = w.Button(description="Refresh")
        self.cancel = w.Button(description="Cancel sweep", button_style="warning")
        self.cancel.add_class("qs-research-cancel")
        self.status = w.HTML()
        self.status.add_class("qs-research-status")
        self.notes = w.HTML()
        self.notes.add_class("qs-research-notes")
        self.runs = SortableTable(filename="runs.csv")
        self.runs.add_class("qs-research-runs")
        self.folds = w.HTML()
        self.chart_error = w.HTML()
        self.heatmap = w.Output()
        self.heatmap.add_class("qs-research-heatmap")
        self.curves = w.Output()
        self.curves.add_class("qs-research-equity")
        self.promote_run = w.Dropdown(
            description="Run", layout=shared_styles.fixed(w.Layout, width="420px")
        )
        self.promote_run.add_class("qs-promote-run")
        self.client_name = w.Text(description="Client name")
        self.client_name.add_class("qs-promote-name")
        self.schedule = w.Text(value="every day at 16:30", description="Schedule")
        self.enabled = w.Checkbox(value=False, description="start enabled")
        self.promote = w.Button(description="Promote this run", button_style="primary")
        self.promote.add_class("qs-promote")
        self.promoted = w.HTML()
        self.promoted.add_class("qs-promote-result")
        self.reload.on_click(lambda _: self.refresh())
        self.cancel.on_click(lambda _: self._cancel())
        self.promote.on_click(lambda _: self._promote())
        self.chooser.observe(lambda _: self.show(), names="value")
        for control in (self.metric, self.x, self.y, self.top):
            control.observe(lambda _: self.show(charts_only=True), names="value")
        self.promote_run.observe(lambda _: self._suggest_name(), names="value")
        super().__init__(
            [
                header("Research"),
                w.HTML("<h3>Sweeps</h3>"),
                self.listing,
                w.HBox([self.chooser, self.reload, self.cancel]),
                self.status,
                self.notes,
                w.HBox([self.metric, self.top]),
                w.HTML("<h3>Runs</h3>"),
                self.runs,
                w.HTML("<h3>Heatmap</h3>"),
                w.HBox([self.x, self.y]),
                self.chart_error,
                self.heatmap,
                self.curves,
                self.folds,
                w.HTML("<h3>Promote a run to a client</h3>"),
                w.HBox([self.promote_run, self.client_name]),
                w.HBox([self.schedule, self.enabled, self.promote]),
                self.promoted,
            ]
        )
        self.refresh(first=True)

    # ---- loading ---------------------------------------------------------------------------
    def refresh(self, first: bool = False) -> None:
        listing = sweeps()
        self.listing.value = table_html(listing)
        names = list(listing["name"]) if not listing.empty else []
        current = self.chooser.value
        self.chooser.options = names
        if names:
            self.chooser.value = current if current in names else names[0]
        if not names:
            self.status.value = (
                "<p>No sweeps yet. Run one: <code>quantstrip sweep notebooks/research/"
                "ma_crossover.ipynb -p fast=5,10,20 -p slow=50:200:25</code></p>"
            )
        self.show(first=first)

    def show(self, charts_only: bool = False, first: bool = False) -> None:
        name = self.chooser.value
        if not name:
            return
        try:
            if not charts_only or self.sweep is None or self.sweep.name != name:
                self.sweep = Sweep.load(name)
            sweep = self.sweep
            results = sweep.results()
        except Exception as exc:
            self.status.value = error_html(f"sweep {name}: {exc}")
            return
        parameters = sweep.parameters
        if not charts_only:
            self._show_runs(sweep, results, parameters)
        metric = self.metric.value
        warning = sweep.peak_warning(metric)
        folds = sweep.walk_forward(metric)
        notes = (
            [f'<p class="qs-error">Warning: {html.escape(warning.message)}</p>'] if warning else []
        )
        self.notes.value = "".join(notes)
        self.folds.value = (
            f"<h3>Walk-forward ({html.escape(str(sweep.manifest.get('windows')))}), chosen by "
            f"in-sample {metric}</h3>{table_html(folds)}"
            if not folds.empty
            else ""
        )
        best = sweep.best(metric, len(results) or 1)
        choices = [(_label(r, parameters, metric), r["key"]) for _, r in best.iterrows()]
        keep = self.promote_run.value
        self.promote_run.options = choices
        keys = [key for _, key in choices]
        self.promote_run.value = keep if keep in keys else (keys[0] if keys else None)
        draw = threading.Thread(
            target=self._show_charts, args=(sweep, results, metric), daemon=True
        ).start
        if first:
            _after_cell(draw)
        else:
            draw()

    def _show_runs(self, sweep: Sweep, results: pd.DataFrame, parameters: list[str]) -> None:
        manifest = sweep.manifest
        state = sweep.state
        self.cancel.disabled = state != "running"
        period = (
            f", period {manifest['start']} to {manifest['end']}" if manifest.get("start") else ""
        )
        self.status.value = (
            f"<p><b>{html.escape(sweep.name)}</b>: {html.escape(str(manifest.get('source')))}, "
            f"{len(results)} of {manifest.get('total')} runs recorded, state {html.escape(state)}"
            f"{html.escape(period)}</p>"
        )
        options = list(parameters)
        self.x.options, self.y.options = options, options
        if len(options) >= 2:
            self.x.value, self.y.value = options[0], options[1]
        elif options:
            self.x.value = self.y.value = options[0]
        columns = ["number", *parameters, *[c for c in RUN_COLUMNS if c != "number"]]
        extra = [
            c for c in results.columns if c.startswith(("is_", "oos_")) and results[c].notna().any()
        ]
        shown = results[[c for c in [*columns[:-1], *extra, "error"] if c in results.columns]]
        if "error" in shown.columns:
            shown = shown.assign(
                error=shown["error"].astype(object).where(shown["error"].notna(), "")
            )
        self.runs.set(shown)

    def _show_charts(self, sweep: Sweep, results: pd.DataFrame, metric: str) -> None:
        try:
            _skip_iri_grammar()
            from quantstrip.analytics.charts import mime_bundle
            from quantstrip.research import charts

            bundles = []
            x, y = self.x.value, self.y.value
            if x and y and x != y and not results.empty:
                bundles.append(
                    (
                        self.heatmap,
                        mime_bundle(charts.heatmap(sweep.grid(x, y, metric), x, y, metric)),
                    )
                )
            best = sweep.best(metric, int(self.top.value))
            if not best.empty:
                labels = {r["key"]: _label(r, sweep.parameters, metric) for _, r in best.iterrows()}
                curves = sweep.equity(list(labels))
                bundles.append((self.curves, mime_bundle(charts.equity_overlay(curves, labels))))
        except Exception as exc:
            self.chart_error.value = error_html(f"charts failed: {exc}")
            return
        self.chart_error.value = ""
        for output, bundle in bundles:
            output.outputs = (bundle,)

    # ---- actions ---------------------------------------------------------------------------
    def _cancel(self) -> None:
        if self.sweep is None:
            return
        self.sweep.store.request_cancel()
        self.status.value += "<p>Cancel requested: the runs stop within seconds.</p>"
        self.cancel.disabled = True

    def _suggest_name(self) -> None:
        if self.sweep is None or not self.promote_run.value:
            return
        values = self.sweep.run(self.promote_run.value)
        suffix = "_".join(str(values[p]) for p in self.sweep.parameters)
        stem = str(self.sweep.manifest.get("source", "strategy")).rsplit("/", 1)[-1].split(".")[0]
        self.client_name.value = f"{stem}_{suffix}".replace(".", "_")[:60]

    def _promote(self) -> None:
        from quantstrip.research.promotion import promote_run

        if self.sweep is None or not self.promote_run.value:
            self.promoted.value = error_html("choose a run to promote")
            return
        try:
            path = promote_run(
                self.sweep,
                self.promote_run.value,
                self.client_name.value.strip(),
                schedule=self.schedule.value.strip() or None,
                enabled=self.enabled.value,
            )
        except Exception as exc:
            self.promoted.value = error_html(f"promote failed: {exc}")
            return
        self.promoted.value = (
            f'<p class="qs-ok">Client <b>{html.escape(path.parent.name)}</b> created: '
            f"<code>{html.escape(str(path))}</code> (see the client monitor)</p>"
        )


def page() -> Any:
    shared_styles.install()  # default layouts and styles shared: shared_styles.py
    return ResearchPage()
