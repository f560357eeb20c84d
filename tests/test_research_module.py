"""A module strategy swept like a notebook: `file.py[:function]`, called once per point with its
parameters, trading through SimBroker into its run's own simulation database."""

from __future__ import annotations

from pathlib import Path

import pytest

from quantstrip.errors import ValidationError

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

MODULE = '''
from datetime import date

import pandas as pd

from quantstrip.brokers import InstrumentSpec, OrderRequest, Recorder
from quantstrip.brokers.sim import SimBroker
from quantstrip.db.handler import Database
from quantstrip.demo import generate_bars
from quantstrip.paths import workspace


def research(size=100, hold=2, seed=0):
    """Buy `size` on the first bar, sell after `hold` bars: one round trip."""
    days = [d.date() for d in pd.bdate_range("2024-01-02", "2024-01-31")]
    bars = generate_bars({"SPY": (100.0, 0.05, 0.2)}, days, seed=seed)["SPY"]
    with Database(workspace().simulation_database) as db:
        broker = SimBroker(account="R", seed=seed)
        broker.subscribe(Recorder(db))
        spec, name = InstrumentSpec("SPY"), f"hold_{hold}"
        for i, bar in enumerate(bars):
            broker.on_bar("SPY", bar)
            if i == 0:
                broker.submit(OrderRequest(spec, "BUY", size, strategy=name, client_order_id="i"))
            if i == hold:
                broker.submit(OrderRequest(spec, "SELL", size, strategy=name, client_order_id="o"))


def elsewhere(size=1):
    raise RuntimeError(f"no data for size {size}")
'''


def test_a_module_strategy_runs_its_research_function_once_per_point(workspace: Path) -> None:
    from quantstrip.analytics import portfolio_report
    from quantstrip.research import sweep

    module = workspace / "strategies" / "hold.py"
    module.parent.mkdir()
    module.write_text(MODULE)
    result = sweep(module, ["size=100,200", "hold=2,3"], workers=2, progress=False)
    runs = result.results()
    assert list(runs["status"]) == ["success"] * 4, runs["error"].tolist()
    assert len(set(runs["database"])) == 4
    for _, run in runs.iterrows():
        stats = portfolio_report(run["database"]).stats
        assert list(stats.index) == [f"hold_{run['hold']}", "Portfolio"]
        assert run["trades"] == 1 and run["net_pnl"] == stats.loc["Portfolio", "net_pnl"]
    by_size = runs.groupby("size")["turnover"].mean()
    assert by_size[200] > by_size[100]  # twice the shares traded
    # Another function of the same file, named after a colon.
    failing = sweep(f"{module}:elsewhere", ["size=1"], workers=1, progress=False)
    assert failing.results().iloc[0]["error"] == "RuntimeError: no data for size 1"
    with pytest.raises(ValidationError, match=r"defines no top-level function missing\(\)"):
        sweep(f"{module}:missing", ["size=1"], progress=False)
    with pytest.raises(ValidationError, match="sizes: not declared in research"):
        sweep(module, ["sizes=1"], progress=False)
