"""A stored sweep, read back: its runs, their equity curves, walk-forward windows, best runs.

What `quantstrip.research.sweep` returns and what the Research page shows. The results of the
current version of the strategy (the hash the sweep last ran) are shown by default; rows of an
earlier version stay on disk and are returned with `all_versions=True`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from quantstrip.research import robustness
from quantstrip.research.metrics import LOWER_IS_BETTER, METRICS
from quantstrip.research.states import SweepState
from quantstrip.research.store import SweepStore, list_sweeps

DEFAULT_METRIC = "sharpe"


@dataclass
class Outcome:
    """What one call of `sweep()` did (the stored results hold every earlier call's too)."""

    ran: int = 0
    skipped: int = 0
    failed: int = 0
    cancelled: int = 0
    seconds: float = 0.0
    dashboard: str | None = None


@dataclass
class Sweep:
    store: SweepStore
    manifest: dict[str, Any]
    outcome: Outcome = field(default_factory=Outcome)

    @classmethod
    def load(cls, name: str) -> Sweep:
        store = SweepStore.named(name)
        return cls(store, store.manifest())

    @property
    def name(self) -> str:
        return self.store.name

    @property
    def parameters(self) -> list[str]:
        return list(self.manifest.get("parameters", {}))

    @property
    def state(self) -> str:
        return _state(self.manifest)

    def results(self, all_versions: bool = False) -> pd.DataFrame:
        frame = self.store.read("results")
        if frame.empty or all_versions:
            return frame
        return frame[frame["notebook_hash"] == self.manifest.get("notebook_hash")].reset_index(
            drop=True
        )

    def equity(self, keys: list[str] | None = None) -> pd.DataFrame:
        """Daily equity per run: columns key, date, equity."""
        frame = self.store.read("equity")
        if keys is not None and not frame.empty:
            frame = frame[frame["key"].isin(keys)]
        return frame

    def windows(self) -> pd.DataFrame:
        frame = self.store.read("windows")
        if frame.empty:
            return frame
        return frame[frame["key"].isin(self.results()["key"])]

    def best(self, metric: str = DEFAULT_METRIC, n: int = 10) -> pd.DataFrame:
        if metric not in METRICS:
            raise ValueError(f"metric: expected one of {', '.join(METRICS)}, got {metric!r}")
        ok = self.results()
        ok = ok[(ok["status"] == "success") & ok[metric].notna()]
        return ok.sort_values(metric, ascending=metric in LOWER_IS_BETTER).head(n)

    def peak_warning(self, metric: str = DEFAULT_METRIC) -> robustness.PeakWarning | None:
        results = self.results()
        if results.empty:
            return None
        return robustness.isolated_peak(results, self.parameters, metric)

    def walk_forward(self, metric: str = DEFAULT_METRIC) -> pd.DataFrame:
        return robustness.walk_forward(self.windows(), self.results(), self.parameters, metric)

    def grid(self, x: str, y: str, metric: str = DEFAULT_METRIC, **fixed: Any) -> pd.DataFrame:
        """`metric` over two parameters (mean over the other parameters unless fixed)."""
        ok = self.results()
        ok = ok[ok["status"] == "success"]
        for name, value in fixed.items():
            ok = ok[ok[name] == value]
        return ok.groupby([x, y], as_index=False)[metric].mean()

    def run(self, key: str) -> pd.Series:
        rows = self.results(all_versions=True)
        match = rows[rows["key"] == key] if not rows.empty else rows
        if match.empty:
            raise KeyError(f"sweep {self.name} has no run {key}")
        return match.iloc[0]


def sweeps() -> pd.DataFrame:
    """Every sweep in the workspace, newest first (for the Research page's list)."""
    rows = [
        {
            "name": m.get("name"),
            "source": m.get("source"),
            "state": _state(m),
            "runs": m.get("total"),
            "succeeded": m.get("succeeded"),
            "failed": m.get("failed"),
            "updated_at": m.get("updated_at"),
        }
        for m in list_sweeps()
    ]
    return pd.DataFrame(rows)


def _state(manifest: dict[str, Any]) -> str:
    """The recorded state, except that a 'running' sweep whose process is gone (killed, machine
    restarted) reads 'interrupted': starting it again resumes it."""
    state = str(manifest.get("state", ""))
    name = manifest.get("name")
    if state == SweepState.RUNNING.value and name and not SweepStore.named(str(name)).running():
        return SweepState.INTERRUPTED.value
    return state
