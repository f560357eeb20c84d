"""Planning a sweep (grids, keys, periods, windows) and judging its results (isolated peaks,
walk-forward choice, exposure and turnover): fast checks without a cluster."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from support.ledger import fill
from support.research import NOTEBOOK, write_notebook

from quantstrip.errors import ValidationError
from quantstrip.research.grid import parse_axis, sample
from quantstrip.research.plan import make_plan
from quantstrip.research.robustness import isolated_peak, walk_forward
from quantstrip.research.windows import parse


def test_a_range_is_inclusive_and_typed_like_its_bounds() -> None:
    assert parse_axis("slow=50:200:25").values == (50, 75, 100, 125, 150, 175, 200)
    assert parse_axis("z=0.5:1.5:0.5").values == (0.5, 1.0, 1.5)
    assert parse_axis("fast=5,10,20").values == (5, 10, 20)
    assert parse_axis("mode=fast, slow,true").values == ("fast", "slow", True)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("fast", "expected name=values"),
        ("2fast=1,2", "not a valid parameter name"),
        ("slow=200:50:25", "stop is below its start"),
        ("slow=50:200:0", "step must be positive"),
        ("slow=a:b:c", "must be numbers"),
        ("fast=5,5", "repeated values"),
    ],
)
def test_a_bad_grid_is_refused_with_the_reason(spec: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        parse_axis(spec)


def test_a_sample_is_reproducible_and_keeps_grid_order() -> None:
    points = [{"x": i} for i in range(100)]
    first, again = sample(points, 10, seed=3), sample(points, 10, seed=3)
    assert first == again and len(first) == 10
    assert [p["x"] for p in first] == sorted(p["x"] for p in first)
    assert sample(points, 10, seed=4) != first


def test_a_parameter_the_notebook_does_not_declare_is_refused() -> None:
    with pytest.raises(ValidationError, match="fsat: not declared in the notebook's parameters"):
        make_plan(NOTEBOOK, ["fsat=5,10"])


def test_a_parameter_may_not_shadow_a_results_column(tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "n.ipynb", "sharpe = 1", "")
    with pytest.raises(ValidationError, match="sharpe: is a column of the results table"):
        make_plan(notebook, ["sharpe=1,2"])


def test_the_period_and_seed_come_from_the_notebooks_own_defaults() -> None:
    plan = make_plan(NOTEBOOK, ["fast=5,10", "slow=50:100:50"], symbols="SPY,QQQ")
    assert plan.period == ("2022-01-03", "2024-12-31")
    assert plan.seed == 11
    assert len(plan.runs) == 8
    assert plan.runs[0].injected == {
        "fast": 5, "slow": 50, "symbol": "SPY", "seed": 11,
        "start": "2022-01-03", "end": "2024-12-31",
    }  # fmt: skip
    narrowed = make_plan(NOTEBOOK, ["fast=5"], start="2023-01-02", seed=4)
    assert narrowed.period == ("2023-01-02", "2024-12-31") and narrowed.seed == 4


def test_run_keys_follow_the_code_not_the_outputs(tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "n.ipynb", "fast = 1", "x = fast")
    keys = [r.key for r in make_plan(notebook, ["fast=1,2"]).runs]
    # Running the notebook in JupyterLab adds outputs and counts: the same runs.
    data = json.loads(notebook.read_text())
    data["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "1"}]
    data["cells"][1]["execution_count"] = 7
    notebook.write_text(json.dumps(data))
    assert [r.key for r in make_plan(notebook, ["fast=1,2"]).runs] == keys
    # Changing the code makes them new runs.
    write_notebook(notebook, "fast = 1", "x = fast * 2")
    assert not set(keys) & {r.key for r in make_plan(notebook, ["fast=1,2"]).runs}


def test_walk_forward_windows_tile_the_period_after_the_first_train_window(tmp_path: Path) -> None:
    folds = parse("train=12M,test=6M").folds(date(2022, 1, 3), date(2024, 12, 31))
    assert [(f.train_start.isoformat(), f.test_start.isoformat()) for f in folds] == [
        ("2022-01-03", "2023-01-03"),
        ("2022-07-03", "2023-07-03"),
        ("2023-01-03", "2024-01-03"),
    ]
    for before, after in itertools.pairwise(folds):
        assert (after.test_start - before.test_end).days == 1
    anchored = parse("train=12M,test=6M,anchored").folds(date(2022, 1, 3), date(2024, 12, 31))
    assert {f.train_start for f in anchored} == {date(2022, 1, 3)}
    with pytest.raises(ValidationError, match="does not fit"):
        parse("train=5Y,test=1Y").folds(date(2022, 1, 3), date(2024, 12, 31))
    with pytest.raises(ValidationError, match="walk-forward windows split the sweep's period"):
        make_plan(write_notebook(tmp_path / "n.ipynb", "fast = 1", ""),
                  ["fast=1"], windows="train=6M,test=3M")  # fmt: skip


def _results(values: dict[tuple[int, int], float]) -> pd.DataFrame:
    rows = [
        {"key": f"{f}-{s}", "fast": f, "slow": s, "status": "success", "sharpe": v}
        for (f, s), v in values.items()
    ]
    return pd.DataFrame(rows)


def test_an_isolated_peak_is_flagged_and_a_plateau_is_not() -> None:
    grid = {(f, s): 0.2 for f in (5, 10, 20) for s in (50, 100, 150)}
    spike = _results({**grid, (10, 100): 2.0})
    warning = isolated_peak(spike, ["fast", "slow"])
    assert warning is not None and warning.best == {"fast": 10, "slow": 100}
    assert len(warning.neighbours) == 4 and "isolated peak" in warning.message
    plateau = _results({**grid, (10, 100): 1.2, (5, 100): 1.1, (20, 100): 1.0,
                        (10, 50): 1.1, (10, 150): 1.05})  # fmt: skip
    assert isolated_peak(plateau, ["fast", "slow"]) is None


def test_walk_forward_picks_the_best_in_sample_run_and_reports_its_out_of_sample() -> None:
    results = _results({(5, 50): 0.0, (10, 50): 0.0})
    windows = pd.DataFrame(
        [
            # fold 1: 5-50 wins in-sample but loses out of sample
            (1, "train", "5-50", 1.5, 100.0), (1, "test", "5-50", -0.5, -20.0),
            (1, "train", "10-50", 0.5, 50.0), (1, "test", "10-50", 0.8, 30.0),
            (2, "train", "5-50", 0.1, 10.0), (2, "test", "5-50", 0.3, 5.0),
            (2, "train", "10-50", 0.9, 60.0), (2, "test", "10-50", 0.4, 8.0),
        ],
        columns=["fold", "segment", "key", "sharpe", "net_pnl"],
    )  # fmt: skip
    windows["start"], windows["end"], windows["trades"] = "2024-01-01", "2024-06-30", 1
    folds = walk_forward(windows, results, ["fast", "slow"])
    assert list(folds["fast"]) == [5, 10]
    assert list(folds["oos_sharpe"]) == [-0.5, 0.4]
    assert folds["oos_net_pnl"].sum() == -12.0


def test_exposure_and_turnover_count_the_days_held_and_the_notional_traded(
    workspace: Path,
) -> None:
    from quantstrip.db.handler import Database
    from quantstrip.research.metrics import run_metrics

    path = workspace / "var" / "run.db"
    with Database(path) as db:
        fill(db, "e1", "BUY", 100, "100", datetime(2024, 1, 2, 15, tzinfo=UTC))
        fill(db, "e2", "SELL", 100, "110", datetime(2024, 1, 4, 15, tzinfo=UTC))
    figures, equity = run_metrics(path, ("2024-01-02", "2024-01-05"))
    # Held at the close of Jan 2 and 3, flat on Jan 4 and 5: half the days.
    assert figures["exposure"] == 0.5
    # 10,000 + 11,000 traded on a 100,000 base over 4 days, per year.
    assert figures["turnover"] == pytest.approx(21_000 / 100_000 * 252 / 4)
    assert figures["net_pnl"] == 1000.0 and figures["trades"] == 1
    assert list(equity) == [100_000.0, 100_000.0, 101_000.0, 101_000.0]
