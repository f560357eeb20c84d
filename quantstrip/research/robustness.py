"""Is the best run a finding or an accident? Two checks a researcher expects.

- Isolated peak: the best run's neighbours (one step away on one numeric parameter, every other
  parameter equal) should be nearly as good. When, on average, they lose more than half of the
  best run's edge over the median run, and more than a quarter of the best value itself, the
  peak is likely noise fitted by the grid, and a warning says so.
- Walk-forward: for each fold, the run with the best in-sample (train) metric is chosen, and
  its out-of-sample (test) figures are what that choice would have earned. Beside them, the
  in-sample figure of the same choice shows how much of the edge survives.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Number
from typing import Any

import pandas as pd

from quantstrip.research.metrics import LOWER_IS_BETTER

ISOLATION_SHARE = 0.5  # of the best run's edge over the median run
MIN_DROP = 0.25  # of the best run's own value: small grids must not warn about small steps


@dataclass(frozen=True)
class PeakWarning:
    metric: str
    best: dict[str, Any]  # the best run's parameters
    best_value: float
    neighbours: list[tuple[dict[str, Any], float]]
    median: float

    @property
    def message(self) -> str:
        shown = ", ".join(f"{_params(p)}: {v:.3g}" for p, v in self.neighbours)
        return (
            f"the best run ({_params(self.best)}, {self.metric} {self.best_value:.3g}) is an "
            f"isolated peak: its neighbours are much worse ({shown}; median of all runs "
            f"{self.median:.3g}). It is likely fitted to noise; prefer a plateau."
        )


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


def _point(row: pd.Series, parameters: list[str]) -> dict[str, Any]:
    return {p: row[p].item() if hasattr(row[p], "item") else row[p] for p in parameters}


def _oriented(values: pd.Series, metric: str) -> pd.Series:
    return -values if metric in LOWER_IS_BETTER else values


def best_run(results: pd.DataFrame, metric: str) -> pd.Series | None:
    ok = results[(results["status"] == "success") & results[metric].notna()]
    if ok.empty:
        return None
    return ok.loc[_oriented(ok[metric].astype(float), metric).idxmax()]


def isolated_peak(
    results: pd.DataFrame, parameters: list[str], metric: str = "sharpe"
) -> PeakWarning | None:
    """A warning when the best run's grid neighbours are much worse (see module docstring)."""
    ok = results[(results["status"] == "success") & results[metric].notna()].copy()
    best = best_run(ok, metric) if not ok.empty else None
    if best is None or len(ok) < 3:
        return None
    numeric = [p for p in parameters if all(isinstance(v, Number) for v in ok[p].dropna())]
    neighbours = []
    for axis in numeric:
        values = sorted(ok[axis].dropna().unique())
        at = values.index(best[axis])
        others = [p for p in parameters if p != axis]
        same = ok[(ok[others] == best[others]).all(axis=1)] if others else ok
        for step in (-1, 1):
            if 0 <= at + step < len(values):
                row = same[same[axis] == values[at + step]]
                if not row.empty:
                    neighbours.append((_point(row.iloc[0], parameters), float(row.iloc[0][metric])))
    if not neighbours:
        return None
    oriented = _oriented(ok[metric].astype(float), metric)
    best_value = float(best[metric])
    top = -best_value if metric in LOWER_IS_BETTER else best_value
    median = float(oriented.median())
    edge = top - median
    around = [(-v if metric in LOWER_IS_BETTER else v) for _, v in neighbours]
    drop = top - sum(around) / len(around)
    if edge <= 0 or drop <= ISOLATION_SHARE * edge or drop <= MIN_DROP * abs(top):
        return None
    return PeakWarning(
        metric,
        _point(best, parameters),
        best_value,
        neighbours,
        -median if metric in LOWER_IS_BETTER else median,
    )


def walk_forward(
    windows: pd.DataFrame, results: pd.DataFrame, parameters: list[str], metric: str = "sharpe"
) -> pd.DataFrame:
    """Per fold: the parameters chosen in-sample, their in-sample and out-of-sample figures."""
    if windows.empty:
        return pd.DataFrame()
    ok = results.loc[results["status"] == "success", ["key", *parameters]]
    data = windows.merge(ok, on="key")
    rows = []
    for fold, group in data.groupby("fold"):
        train = group[(group["segment"] == "train") & group[metric].notna()]
        if train.empty:
            continue
        chosen = train.loc[_oriented(train[metric].astype(float), metric).idxmax()]
        test = group[(group["segment"] == "test") & (group["key"] == chosen["key"])].iloc[0]
        rows.append(
            {
                "fold": int(fold),
                "train": f"{chosen['start']} to {chosen['end']}",
                "test": f"{test['start']} to {test['end']}",
                **_point(chosen, parameters),
                f"is_{metric}": chosen[metric],
                f"oos_{metric}": test[metric],
                "oos_net_pnl": test["net_pnl"],
                "oos_trades": test["trades"],
            }
        )
    return pd.DataFrame(rows)
