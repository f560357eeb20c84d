"""Portfolio on total PnL (realised + unrealised, marked to market from daily marks), checked
by hand; ratios withheld below a minimum history; empty windows say so; charts readable."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from quantstrip import settings
from quantstrip.analytics import charts, portfolio_report
from quantstrip.analytics.connection import reset
from quantstrip.analytics.mark_to_market import total_pnl_report
from quantstrip.brokers import InstrumentSpec, OrderRequest, Recorder
from quantstrip.brokers.sim import FixedTierCommission, SimBroker
from quantstrip.dashboard.portfolio_view import ratios_shown, stats_frame
from quantstrip.db.handler import Database

ZONE = "America/New_York"
FREE = FixedTierCommission(Decimal(0), Decimal(0))


def at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


@pytest.fixture
def ledger(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Mon 3 Mar 2031: buy 10 X at 100, close 101. Tue: close 104. Wed: sell 10 at 103
    (realised +30), close 103. Marks at 21:00 UTC (16:00 New York) each day."""
    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    settings._reset_for_tests()
    reset()
    path = workspace / "var" / "quantstrip.db"
    spec = InstrumentSpec("X")
    with Database(path) as db:
        broker = SimBroker(account="A", commission=FREE)
        broker.risk = None
        broker.subscribe(Recorder(db))
        monday, tuesday, wednesday = date(2031, 3, 3), date(2031, 3, 4), date(2031, 3, 5)
        broker.on_quote("X", "100", at(monday, 14))
        broker.submit(OrderRequest(spec, "BUY", 10, strategy="s"))
        broker.on_quote("X", "100", at(monday, 15))
        broker.on_quote("X", "101", at(monday, 21))
        broker.snapshot_marks([spec])
        broker.on_quote("X", "104", at(tuesday, 21))
        broker.snapshot_marks([spec])
        broker.submit(OrderRequest(spec, "SELL", 10, strategy="s"))
        broker.on_quote("X", "103", at(wednesday, 15))
        broker.on_quote("X", "103", at(wednesday, 21))
        broker.snapshot_marks([spec])
    yield path
    reset()
    settings._reset_for_tests()


def test_total_pnl_marks_open_positions_to_market_each_day(ledger: Path) -> None:
    realised = portfolio_report(ledger, strategies=["s"])
    assert list(realised.daily_pnl["s"]) == [0.0, 0.0, 30.0]  # only the closing day
    total, unrealised = total_pnl_report(realised, ZONE, ledger)
    # Monday: 10 x (101 - 100) = +10 open; Tuesday: 10 x (104 - 100) = +40, change +30;
    # Wednesday: closed at 103 (+30 realised), unrealised back to 0, change -40: day -10.
    assert list(unrealised.values["s"]) == [10.0, 40.0, 0.0]
    assert list(total.daily_pnl["s"]) == [10.0, 30.0, -10.0]
    assert total.equity["s"].iloc[-1] == pytest.approx(100_000 + 30)
    assert total.stats.loc["s", "total_pnl"] == pytest.approx(30.0)
    assert total.stats.loc["s", "unrealised_pnl"] == 0.0
    # Drawdown seen only when marked to market: Tuesday's peak 100,040 to Wednesday's 100,030.
    assert realised.stats.loc["s", "max_drawdown"] == 0.0
    assert total.stats.loc["s", "max_drawdown"] == pytest.approx(10.0)


def test_a_horizon_starting_mid_position_counts_only_the_change_inside_it(ledger: Path) -> None:
    realised = portfolio_report(ledger, strategies=["s"], horizon=("2031-03-04", "2031-03-05"))
    total, _ = total_pnl_report(realised, ZONE, ledger)
    assert list(total.daily_pnl["s"]) == [30.0, -10.0]  # Monday's +10 is before the horizon


def test_annualised_ratios_are_na_below_the_minimum_history(ledger: Path) -> None:
    report = portfolio_report(ledger, strategies=["s"])
    assert not ratios_shown(report)
    shown = stats_frame(report, "realised").set_index("strategy")
    assert shown.loc["s", "sharpe"] == "n/a" and shown.loc["s", "sortino"] == "n/a"
    assert "None" not in shown.to_string() and "nan" not in shown.to_string()
    long = report.daily_pnl.reindex(pd.bdate_range("2030-01-01", "2031-03-05"), fill_value=0.0)
    report.daily_pnl = long
    assert ratios_shown(report)


def test_charts_have_tooltips_years_one_vega_lite_and_a_scale_per_series(ledger: Path) -> None:
    report = portfolio_report(ledger, strategies=["s"])
    spec = charts.to_spec(charts.equity_chart(report))
    assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/v5.")
    assert spec["resolve"]["scale"]["y"] == "independent"
    assert spec["facet"]["row"]["field"] == "strategy"
    layers = spec["spec"]["layer"]
    assert any("tooltip" in layer["encoding"] for layer in layers)
    assert layers[0]["encoding"]["x"]["axis"]["format"] == "%b %Y"
    svg = charts.to_svg(charts.equity_chart(report))
    assert "Mar 2031" in svg
    bars = charts.to_spec(charts.strategy_bars(report))
    assert "tooltip" in bars["encoding"]


def test_a_report_window_without_fills_is_empty_not_none(ledger: Path) -> None:
    report = portfolio_report(ledger, strategies=["s"], horizon=("2001-01-01", "2001-02-01"))
    assert report.daily_pnl.empty or not report.daily_pnl.any().any()
    total, _ = total_pnl_report(report, ZONE, ledger)
    shown = stats_frame(total, "total")
    assert "None" not in shown.to_string()


def test_total_pnl_rounds_half_cents_up_like_the_realised_figures(
    workspace: Path, tmp_path: Path
) -> None:
    from support import half_cents

    path = half_cents.build(tmp_path / "half.db")
    reset()
    try:
        realised = portfolio_report(path)
        total, _ = total_pnl_report(realised, ZONE, path)
    finally:
        reset()
    for strategy, (net, _commission) in half_cents.EXPECTED.items():
        # Everything is closed: total PnL is the net realised PnL, to the cent, half up.
        assert total.stats.loc[strategy, "total_pnl"] == float(net), strategy
        assert total.stats.loc[strategy, "net_pnl"] == float(net), strategy


def test_the_total_drawdowns_dates_are_those_of_the_total_drawdown(ledger: Path) -> None:
    realised = portfolio_report(ledger, strategies=["s"])
    assert realised.stats.loc["s", "drawdown_peak"] is None  # no realised drawdown
    total, _ = total_pnl_report(realised, ZONE, ledger)
    # Marked to market: Tuesday's peak of 100,040, Wednesday's trough of 100,030.
    assert total.stats.loc["s", "drawdown_peak"] == date(2031, 3, 4)
    assert total.stats.loc["s", "drawdown_trough"] == date(2031, 3, 5)
    assert total.stats.loc["s", "drawdown_recovery"] is None
