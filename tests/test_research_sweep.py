"""Sweeps of the research notebook on real Dask clusters: the in-process LocalCluster and a
`dask scheduler` with two `dask worker` processes; real kernels, real SQLite files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from support.research import (
    GRID,
    PERIOD,
    checksum,
    copy_notebook,
    same,
    start_dask_cluster,
    sweep_env,
)

from quantstrip.analytics import portfolio_report
from quantstrip.research.metrics import METRICS, REPORT_METRICS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A workspace with a production database (demo history) and the research notebook; the
    8-run sweep is run once on the local cluster, with the production checksum around it."""
    root = tmp_path_factory.mktemp("lab")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in sweep_env(root).items():
            if name.startswith("QUANTSTRIP_"):
                patch.setenv(name, value)
        patch.delenv("QUANTSTRIP_DATABASE", raising=False)
        from quantstrip import db_handler
        from quantstrip.demo import build_demo
        from quantstrip.paths import init_workspace, workspace
        from quantstrip.research import sweep

        init_workspace()
        db_handler.reset()
        production = workspace().database
        build_demo(production, seed=3, years=1)
        notebook = copy_notebook(root)
        before = checksum(production)
        result = sweep(notebook, GRID, start=PERIOD[0], end=PERIOD[1], workers=2, progress=False)
        yield {
            "root": root,
            "notebook": notebook,
            "production": production,
            "before": before,
            "result": result,
        }
        db_handler.reset()


def test_eight_runs_on_a_local_cluster_match_the_portfolio_report_of_each_run(lab) -> None:
    results = lab["result"].results()
    assert len(results) == 8
    assert list(results["status"]) == ["success"] * 8, results["error"].tolist()
    assert set(map(tuple, results[["fast", "slow", "symbol"]].values)) == {
        (f, s, y) for f in GRID["fast"] for s in GRID["slow"] for y in GRID["symbol"]
    }
    for _, run in results.iterrows():
        report = portfolio_report(run["database"], horizon=PERIOD).stats.loc["Portfolio"]
        for metric in REPORT_METRICS:
            assert same(run[metric], report[metric]), (metric, run[metric], report[metric])
        assert run["trades"] > 0  # the strategy really traded
        assert 0 < run["exposure"] <= 1 and run["turnover"] > 0
        assert run["notebook_hash"] == lab["result"].manifest["notebook_hash"]
        assert run["seed"] == 11  # the notebook's own seed: every run on the same bars
    curves = lab["result"].equity()
    assert curves.groupby("key")["date"].count().min() == len(pd.bdate_range(*PERIOD))


def test_each_run_has_its_own_database_and_production_is_untouched(lab) -> None:
    results = lab["result"].results()
    databases = {Path(p) for p in results["database"]}
    assert len(databases) == 8
    sweep_dir = lab["result"].store.directory
    for path in databases:
        assert path.is_relative_to(sweep_dir) and path.exists()
        strategies = portfolio_report(path).stats.index.drop("Portfolio").tolist()
        assert len(strategies) == 1  # only this run's strategy in this run's file
    assert lab["production"] not in databases
    assert checksum(lab["production"]) == lab["before"]
    # The kernel's workspace was the run's own directory: no production-named file beside it
    # was written by the notebook, and nothing appeared in the workspace's data directory.
    assert not (lab["production"].parent / "simulation.db").exists()


def test_starting_the_same_sweep_again_skips_every_finished_run(lab) -> None:
    from quantstrip.research import sweep

    again = sweep(lab["notebook"], GRID, start=PERIOD[0], end=PERIOD[1], progress=False)
    assert again.name == lab["result"].name
    assert (again.outcome.ran, again.outcome.skipped) == (0, 8)
    assert len(again.results()) == 8


def test_the_same_sweep_on_a_dask_scheduler_with_two_workers_gives_identical_results(
    lab, tmp_path: Path
) -> None:
    from quantstrip.research import sweep

    cluster = start_dask_cluster(tmp_path / "dask", sweep_env(lab["root"]))
    address = next(cluster)
    try:
        remote = sweep(
            lab["notebook"],
            GRID,
            start=PERIOD[0],
            end=PERIOD[1],
            name="on-a-cluster",
            cluster=address,
            progress=False,
        )
    finally:
        cluster.close()
    local = lab["result"].results().set_index("key")
    other = remote.results().set_index("key")
    assert remote.outcome.ran == 8
    assert sorted(other.index) == sorted(local.index)  # same code + parameters = same keys
    assert set(other["worker"]) != set(local["worker"])  # really ran elsewhere
    assert other["worker"].nunique() == 2  # on both workers
    assert all(w.startswith("tcp://127.0.0.1:") for w in other["worker"])
    assert all(w.startswith("inproc://") for w in local["worker"])
    for key, run in other.iterrows():
        for column in ("fast", "slow", "symbol", "seed", "status", *METRICS):
            assert same(run[column], local.loc[key, column]), (key, column)
    assert checksum(lab["production"]) == lab["before"]
