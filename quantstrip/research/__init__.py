"""Parameter sweeps and walk-forward research on Dask.

`sweep(source, {"fast": [5, 10, 20], "slow": range(50, 201, 25)})` runs a notebook (or a
module's research function) once per point of the grid, each run in its own simulation
database, on an in-process Dask LocalCluster or the scheduler in `research.cluster`; results
are Parquet files in the workspace, read back with `Sweep.load(name)` or DuckDB. Imported
lazily: `import quantstrip.research` costs nothing until a function is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["RunStatus", "Sweep", "SweepState", "load", "sweep", "sweeps"]

_LAZY = {
    "sweep": ("quantstrip.research.coordinator", "sweep"),
    "Sweep": ("quantstrip.research.results", "Sweep"),
    "sweeps": ("quantstrip.research.results", "sweeps"),
    "RunStatus": ("quantstrip.research.states", "RunStatus"),
    "SweepState": ("quantstrip.research.states", "SweepState"),
}


def load(name: str) -> Any:
    """A stored sweep by name (see `sweeps()` for the list)."""
    from quantstrip.research.results import Sweep

    return Sweep.load(name)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'quantstrip.research' has no attribute {name!r}")
