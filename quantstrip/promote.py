"""`quantstrip promote`: turn a research notebook or module into a registered client.

The source is copied (research keeps evolving; the client runs what was promoted) into
`clients/<name>/`, next to a generated `client.toml`. A notebook gets a cell tagged `parameters`
if it has none (see `client_admin.ensure_parameters_cell`). All or nothing: the client is built
and validated in a staging folder and moved into `clients/` only when it is valid, so a failed
promote leaves nothing behind and a failed `--force` leaves the old client in place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from quantstrip.client_admin import ClientSpec, create, ensure_parameters_cell

__all__ = ["ensure_parameters_cell", "promote"]


def promote(
    source: Path,
    name: str,
    schedule: str | None = None,
    tz: str | None = None,
    calendar: str | None = None,
    class_name: str | None = None,
    mode: str = "simulation",
    enabled: bool = True,
    force: bool = False,
    parameters: dict[str, Any] | None = None,
) -> Path:
    """Register `source` as client `name`; returns the client.toml path (validated).
    `parameters` become the client's `[parameters]` (a sweep's run promoted as it ran)."""
    spec = ClientSpec(
        name=name,
        source=Path(source),
        schedule=schedule,
        tz=tz,
        calendar=calendar,
        class_name=class_name,
        mode=mode,
        enabled=enabled,
        parameters=dict(parameters or {}),
    )
    return create(spec, replace=force)
