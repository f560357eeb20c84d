"""From what the user asked to the list of runs, each with the key that identifies it.

A run's key is a hash of the strategy's hash and everything injected into it (the swept values,
the seed, the period) plus the windows its metrics cover: the same point of the same sweep of
the same code has the same key, so a sweep started again skips the runs already finished.

The period comes from `start`/`end` when given, else from the literal defaults of the
strategy's own `start` and `end` parameters; metrics cover that period (every run over the same
days) and walk-forward windows split it. The seed is `seed` when given, else the strategy's own
`seed` default, else 0: runs share it (common random numbers, so parameters are compared on the
same data) and each run's kernel seeds Python's and numpy's generators with it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from quantstrip.errors import ValidationError
from quantstrip.research import grid as grids
from quantstrip.research.metrics import METRICS
from quantstrip.research.source import StrategySource, load_source
from quantstrip.research.windows import Fold, WalkForward, parse

# Columns of the results table a parameter may not shadow.
RESERVED = frozenset(
    {
        "sweep", "key", "attempt", "number", "status", "error", "traceback",
        "notebook_hash", "source", "started_at", "finished_at", "duration_s", "worker",
        "database", "output", "parameters", "kernel_pid",
        *METRICS, *(f"is_{m}" for m in METRICS), *(f"oos_{m}" for m in METRICS),
    }
)  # fmt: skip


@dataclass(frozen=True)
class PlannedRun:
    number: int
    key: str
    parameters: dict[str, Any]
    injected: dict[str, Any]


@dataclass(frozen=True)
class SweepPlan:
    name: str
    source: StrategySource
    axes: list[grids.Axis]
    runs: list[PlannedRun]
    seed: int
    period: tuple[str | None, str | None]
    windows: WalkForward | None = None
    folds: list[Fold] = field(default_factory=list)
    sample: int | None = None

    @property
    def parameter_names(self) -> list[str]:
        return [a.name for a in self.axes]

    def describe(self) -> dict[str, Any]:
        """The manifest's record of what was asked."""
        return {
            "name": self.name,
            "source": str(self.source.path),
            "kind": self.source.kind,
            "function": self.source.function,
            "notebook_hash": self.source.digest,
            "parameters": {a.name: list(a.values) for a in self.axes},
            "sample": self.sample,
            "seed": self.seed,
            "start": self.period[0],
            "end": self.period[1],
            "windows": self.windows.text if self.windows else None,
            "total": len(self.runs),
        }


def _iso(value: Any, what: str) -> str | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise ValidationError(what, f"expected a date YYYY-MM-DD, got {value!r}") from None


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def make_plan(
    source: str | Path | StrategySource,
    grid: dict[str, Any] | list[str] | None = None,
    *,
    symbols: str | list[str] | None = None,
    windows: str | WalkForward | None = None,
    sample: int | None = None,
    seed: int | None = None,
    start: str | date | None = None,
    end: str | date | None = None,
    name: str | None = None,
) -> SweepPlan:
    strategy = source if isinstance(source, StrategySource) else load_source(source)
    if isinstance(grid, dict):
        axes = grids.from_mapping(grid)
        if symbols:
            axes += grids.parse_axes([], symbols)
    else:
        axes = grids.parse_axes(list(grid or []), symbols)
    if not axes:
        raise ValidationError("parameter", "give at least one parameter to sweep (-p name=values)")
    names = [a.name for a in axes]
    for axis in names:
        if axis in RESERVED:
            raise ValidationError(axis, "is a column of the results table: rename the parameter")
    strategy.check(names)
    declared = strategy.declared
    if "seed" in names and seed is not None:
        raise ValidationError("seed", "is swept as a parameter: do not also give a sweep seed")
    period = (
        _iso(start if start is not None else declared.get("start"), "start"),
        _iso(end if end is not None else declared.get("end"), "end"),
    )
    if period[0] and period[1] and period[0] > period[1]:
        raise ValidationError("end", f"{period[1]} is before the start {period[0]}")
    default_seed = declared.get("seed")
    run_seed = int(
        seed if seed is not None else default_seed if isinstance(default_seed, int) else 0
    )
    walk = parse(windows) if isinstance(windows, str) else windows
    folds: list[Fold] = []
    if walk is not None:
        if not (period[0] and period[1]):
            raise ValidationError(
                "windows",
                "walk-forward windows split the sweep's period: give start and end (or declare "
                "them with literal dates in the strategy's parameters)",
            )
        folds = walk.folds(date.fromisoformat(period[0]), date.fromisoformat(period[1]))
    context = {"seed": run_seed, "start": period[0], "end": period[1]}
    extra = {
        k: v
        for k, v in context.items()
        if v is not None and k not in names and (k in declared or strategy.accepts_any)
    }
    points = grids.sample(grids.expand(axes), sample, run_seed)
    window_text = walk.text if walk else None
    runs = []
    for number, point in enumerate(points, start=1):
        injected = {**point, **extra}
        key = _digest([strategy.digest, injected, period, window_text])[:24]
        runs.append(PlannedRun(number, key, point, injected))
    spec = [str(strategy.path), strategy.function, [(a.name, a.values) for a in axes],
            sample, run_seed, period, window_text]  # fmt: skip
    return SweepPlan(
        name=name or f"{strategy.name}-{_digest(spec)[:8]}",
        source=strategy,
        axes=axes,
        runs=runs,
        seed=run_seed,
        period=period,
        windows=walk,
        folds=folds,
        sample=sample,
    )
