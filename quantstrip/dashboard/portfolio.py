"""Portfolio report: horizon, strategy and basis selectors (total PnL = realised + unrealised,
marked to market from daily marks, or realised only), charts and per-strategy statistics, with
the conventions behind the numbers on the page."""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import ipywidgets as w

from quantstrip.analytics.connection import cursor, open_in_background
from quantstrip.dashboard import shared_styles
from quantstrip.dashboard.common import error_html, header, table_html
from quantstrip.dashboard.first_state import Failed, FirstData
from quantstrip.dashboard.ticker import BrowserTicker

if TYPE_CHECKING:  # pandas and the report are imported by the page, see _import_report
    from quantstrip.analytics.metrics import PortfolioReport

HORIZONS = [
    ("All history", "all"),
    ("Year to date", "ytd"),
    ("Last 12 months", "1y"),
    ("Last 3 months", "3m"),
    ("Custom dates", "custom"),
]
CHARTS = ("equity", "drawdown", "returns", "strategies")
BASES = [("Total: realised + unrealised", "total"), ("Realised only", "realised")]


def strategy_names() -> list[str]:
    conn = cursor()
    try:
        return [r[0] for r in conn.execute("SELECT name FROM strategies ORDER BY name").fetchall()]
    finally:
        conn.close()


def day_zone() -> str:
    from quantstrip import settings_file

    return settings_file.day_zone()


def _import_report() -> None:
    """pandas and the report's modules. Imported while the ledger's engine opens in a thread
    (`open_in_background`), not when this module is: the two are most of the page's start
    (about 0.5 s each, more under load) and overlap on a machine with a spare core."""
    for name in (
        "pandas",
        "quantstrip.analytics.metrics",
        "quantstrip.analytics.mark_to_market",
        "quantstrip.dashboard.portfolio_view",
    ):
        importlib.import_module(name)


@dataclass(frozen=True)
class Selection:
    """What the report is asked for: the selectors' values, checked."""

    horizon: str | tuple
    strategies: list[str]
    frequency: str
    basis: str


@dataclass(frozen=True)
class Computed:
    """One report as the page shows it."""

    report: PortfolioReport
    basis: str
    zone: str
    stale_days: int
    strategies: int


def compute(selection: Selection) -> Computed:
    from quantstrip.analytics.metrics import portfolio_report

    report = portfolio_report(
        horizon=selection.horizon, strategies=selection.strategies, frequency=selection.frequency
    )
    zone, stale_days = day_zone(), 0
    if selection.basis == "total":
        from quantstrip.analytics.mark_to_market import stale_summary, total_pnl_report

        report, unrealised = total_pnl_report(report, zone)
        stale_days = stale_summary(unrealised)[0]
    return Computed(report, selection.basis, zone, stale_days, len(selection.strategies))


def first_report() -> tuple[list[str], Computed]:
    """The page's first screen: every strategy, all history, daily, total PnL."""
    names = strategy_names()
    return names, compute(Selection("all", names, "D", "total"))


class PortfolioPage(w.VBox):
    def __init__(self) -> None:
        open_in_background()
        _import_report()
        self.horizon = w.Dropdown(options=HORIZONS, value="all", description="Horizon")
        self.start = w.DatePicker(description="From")
        self.end = w.DatePicker(description="To")
        self.start.add_class("qs-from")
        self.end.add_class("qs-to")
        self.custom = w.VBox(
            [self.start, self.end], layout=shared_styles.own(w.Layout, display="none")
        )
        self.horizon.observe(self._toggle_custom, names="value")
        self.scope = w.HTML()
        self.scope.add_class("qs-scope")
        self.strategies = w.SelectMultiple(description="Strategies", rows=2)
        self.strategies.add_class("qs-portfolio-strategies")
        self.frequency = w.ToggleButtons(
            options=[("Daily", "D"), ("Weekly", "W"), ("Monthly", "M")], value="D"
        )
        self.basis = w.ToggleButtons(options=BASES, value="total", description="PnL")
        self.basis.add_class("qs-basis")
        self.conventions = w.HTML()
        # Enabled with the first report (its strategies fill the selector).
        self.apply = w.Button(description="Update", button_style="primary", disabled=True)
        self.apply.add_class("qs-update")
        self.stats = w.HTML("<p><i>Reading the ledger...</i></p>")
        self.stats.add_class("qs-stats")
        self.chart_error = w.HTML()
        self.chart_outputs = {name: w.Output() for name in CHARTS}
        for name, output in self.chart_outputs.items():
            output.add_class("qs-chart")
            output.add_class(f"qs-chart-{name}")
        self.periods = w.HTML()
        self.periods_title = w.HTML()
        # The first report is read while the browser boots (first_state.py); its charts wait
        # for the browser (see _browser_ready).
        self._first_charts: tuple[PortfolioReport, str] | None = None
        self.first = FirstData(first_report, self._show_first)
        self.browser = BrowserTicker(self._browser_ready, interval_ms=50, kick_every_s=0.25)
        self.apply.on_click(lambda _: self.refresh())
        super().__init__(
            [
                header("Portfolio report"),
                w.HBox(
                    [
                        w.VBox([self.horizon, self.custom]),
                        self.strategies,
                        w.VBox([self.frequency, self.basis, self.apply]),
                    ]
                ),
                w.HTML("<h3>Statistics</h3>"),
                self.scope,
                self.stats,
                self.conventions,
                self.chart_error,
                *self.chart_outputs.values(),
                self.periods_title,
                self.periods,
                self.browser.widget,
            ]
        )
        self.first.start()
        self.browser.start()

    def refresh(self) -> None:
        """Update: the report for the selectors' values, charts drawn at once."""
        self._first_charts = None  # a newer report: the first one's charts are no longer wanted
        selection = self._selection()
        if isinstance(selection, str):
            self.stats.value = error_html(selection)
            return
        try:
            computed = compute(selection)
        except Exception as exc:
            self.stats.value = error_html(f"report failed: {exc}")
            return
        self._show(computed, charts_now=True)

    def _selection(self) -> Selection | str:
        chosen = list(self.strategies.value)
        if not chosen:
            return "choose at least one strategy"
        horizon: str | tuple = self.horizon.value
        if horizon == "custom":
            start, end = self.start.value, self.end.value
            if start is None and end is None:
                return "custom dates: choose a start or an end date"
            if start is not None and end is not None and start > end:
                return f"custom dates: {start} is after {end}"
            horizon = (start, end)
        return Selection(horizon, chosen, self.frequency.value, self.basis.value)

    def _show_first(self, result: tuple[list[str], Computed] | Failed, browser_ready: bool) -> None:
        if isinstance(result, Failed):
            self.stats.value = error_html(f"report failed: {result.error}")
            return
        names, computed = result
        self.strategies.options = names
        self.strategies.value = tuple(names)
        self.strategies.rows = min(6, max(2, len(names)))
        self.apply.disabled = False
        self._show(computed, charts_now=browser_ready)

    def _show(self, computed: Computed, charts_now: bool) -> None:
        from quantstrip.dashboard.portfolio_view import conventions_html, empty_message, stats_frame

        report, basis = computed.report, computed.basis
        first_day = report.start or (
            report.daily_pnl.index.min() if len(report.daily_pnl) else None
        )
        last_day = report.end or (report.daily_pnl.index.max() if len(report.daily_pnl) else None)
        # The scope line is set last: it says what the page shows, so it changes only once the
        # statistics and periods below it are the new window's (set first, a reader or a test
        # that waited for the new scope could still see the previous window's trade count).
        scope = f"<p>{_day(first_day)} to {_day(last_day)}, {computed.strategies} strategies</p>"
        self.conventions.value = conventions_html(report, basis, computed.zone, computed.stale_days)
        label = "Total" if basis == "total" else "Net realised"
        self.periods_title.value = f"<h3>{label} PnL per period</h3>"
        if report.daily_pnl.empty:
            message = empty_message(report, _day(first_day), _day(last_day))
            self.stats.value = message
            self.chart_error.value = message
            for output in self.chart_outputs.values():
                output.outputs = ()
            self.periods.value = ""
            self.scope.value = scope
            return
        self.stats.value = table_html(stats_frame(report, basis))
        # Statistics first; the charts follow, built in a thread (importing Altair costs most
        # of a second) and drawn by the browser. The first report's wait until the browser has
        # the page (see _browser_ready); later ones (Update) are built at once.
        if charts_now:
            self._draw_charts(report, basis)
        else:
            self._first_charts = (report, basis)
        periods = report.resampled_pnl().tail(24).rename_axis(index="date", columns=None)
        periods = periods.reset_index()
        periods["date"] = periods["date"].dt.date
        self.periods.value = table_html(periods)
        self.scope.value = scope

    def _browser_ready(self) -> None:
        """The browser's first tick: it has built this page's widgets, so the charts' updates
        reach it. Built during the page's load instead (a thread started with the page), the
        Altair import held the kernel's interpreter while the browser fetched the widgets'
        state: the statistics showed 1-2 s later on a loaded machine, and an update sent before
        the browser had the widgets could be lost (f7e390b)."""
        self.browser.stop()
        self.first.browser_ready()  # a first report that took longer than the state's wait
        pending, self._first_charts = self._first_charts, None
        if pending is not None:
            self._draw_charts(*pending)

    def _draw_charts(self, report: PortfolioReport, basis: str) -> None:
        threading.Thread(target=self._show_charts, args=(report, basis), daemon=True).start()

    def _toggle_custom(self, change: dict) -> None:
        self.custom.layout.display = "flex" if change["new"] == "custom" else "none"

    def _show_charts(self, report: PortfolioReport, basis: str = "realised") -> None:
        # The browser renders the Vega-Lite specs with the Vega bundled in Voila: the kernel only
        # builds them, instead of rasterising them itself with vl-convert.
        try:
            _skip_iri_grammar()
            from quantstrip.analytics import charts

            total = basis == "total"
            built = {
                "equity": charts.equity_chart(
                    report, "Equity, marked to market" if total else "Equity, realised PnL"
                ),
                "drawdown": charts.drawdown_chart(report),
                "returns": charts.return_histogram(report),
                "strategies": charts.strategy_bars(report, "total_pnl" if total else "net_pnl"),
            }
            bundles = {name: charts.mime_bundle(chart) for name, chart in built.items()}
        except Exception as exc:
            self.chart_error.value = error_html(f"charts failed: {exc}")
            return
        self.chart_error.value = ""
        for name, output in self.chart_outputs.items():
            output.outputs = (bundles[name],)


def _day(value: object) -> str:
    import pandas as pd

    return "start" if value is None else str(pd.Timestamp(value).date())


def _skip_iri_grammar() -> None:
    """Keep jsonschema (imported by Altair) from compiling rfc3987-syntax's IRI grammar.

    jsonschema registers an "iri" format checker when rfc3987-syntax is installed (it comes with
    Jupyter's own dependencies), and that module builds a Lark parser at import: 0.7 s of CPU
    in every dashboard kernel that draws a chart. Chart specs never use the "iri" format; this
    kernel only renders the dashboard, so the checker is left out here and nowhere else.
    """
    if "rfc3987_syntax" not in sys.modules and "jsonschema" not in sys.modules:
        sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]


def _after_cell(action: Callable[[], None]) -> None:
    """Run `action` once the running notebook cell has finished (at once outside IPython).
    The research page draws its charts with it."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the dashboard's kernel
        action()
        return
    shell = get_ipython()
    if shell is None:
        action()
        return

    def once(*_: object) -> None:
        shell.events.unregister("post_run_cell", once)
        action()

    shell.events.register("post_run_cell", once)


def page() -> PortfolioPage:
    shared_styles.install()  # default layouts and styles shared: shared_styles.py
    return PortfolioPage()
