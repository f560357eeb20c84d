"""Promote a sweep's run: a client running the strategy with that run's parameters.

The same path as `quantstrip promote` (quantstrip.promote), with the run's swept values written
to the client's `[parameters]` (the daemon injects them into every scheduled run). The source
must still be the code that produced the run: promoting an edited notebook would schedule
something that was never tested, so that is refused unless asked for explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantstrip.errors import ValidationError
from quantstrip.promote import promote
from quantstrip.research.results import Sweep
from quantstrip.research.source import load_source


def run_parameters(sweep: Sweep, key: str) -> dict[str, Any]:
    run = sweep.run(key)
    return {p: run[p].item() if hasattr(run[p], "item") else run[p] for p in sweep.parameters}


def promote_run(
    sweep: Sweep,
    key: str,
    name: str,
    schedule: str | None = None,
    *,
    tz: str = "UTC",
    enabled: bool = True,
    force: bool = False,
    allow_changed_source: bool = False,
) -> Path:
    """Register client `name` from run `key` of `sweep`; returns its client.toml."""
    run = sweep.run(key)
    if run["status"] != "success":
        raise ValidationError("run", f"run {run['number']} {run['status']}: promote a finished run")
    source = load_source(sweep.manifest["source"])
    if source.digest != run["notebook_hash"] and not allow_changed_source:
        raise ValidationError(
            "source",
            f"{source.path.name} changed since run {run['number']} ran: run the sweep again "
            "(its finished runs are kept) or promote anyway",
        )
    return promote(
        source.path,
        name,
        schedule=schedule,
        tz=tz,
        enabled=enabled,
        force=force,
        parameters=run_parameters(sweep, key),
    )
