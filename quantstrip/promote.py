"""`quantstrip promote`: turn a research notebook or module into a registered client.

The source is copied (research keeps evolving; the client runs what was promoted) into
`clients/<name>/`, next to a generated `client.toml`. A notebook gets a cell tagged `parameters`
if it has none, because papermill injects the run's parameters (run time, mode, client name)
right after that cell; without it they would land at the top, before the author's defaults, and
be overwritten by them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import nbformat
import tomlkit

from quantstrip.client.runner import find_client_classes
from quantstrip.daemon.registry import CLIENT_FILE, load_client
from quantstrip.errors import ConfigError, ValidationError
from quantstrip.paths import workspace

PARAMETERS_CELL = """# Parameters: the daemon injects the values of each run after this cell.
client_name = "research"
mode = "simulation"
run_time = ""
scheduled_for = ""
"""


def ensure_parameters_cell(path: Path) -> bool:
    """Add a `parameters`-tagged cell (after leading markdown) if none exists. True if added."""
    nb = nbformat.read(path, as_version=4)
    if any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        return False
    cell = nbformat.v4.new_code_cell(PARAMETERS_CELL)
    cell.metadata["tags"] = ["parameters"]
    position = 0
    while position < len(nb.cells) and nb.cells[position].cell_type == "markdown":
        position += 1
    nb.cells.insert(position, cell)
    nbformat.write(nb, path)
    return True


def promote(
    source: Path,
    name: str,
    schedule: str | None = None,
    tz: str = "UTC",
    calendar: str | None = None,
    class_name: str | None = None,
    mode: str = "simulation",
    enabled: bool = True,
    force: bool = False,
    parameters: dict[str, Any] | None = None,
) -> Path:
    """Register `source` as client `name`; returns the client.toml path (validated).
    `parameters` become the client's `[parameters]` (a sweep's run promoted as it ran)."""
    source = Path(source)
    if not source.is_file():
        raise ValidationError("source", f"{source} does not exist")
    suffix = source.suffix.lower()
    if suffix not in (".ipynb", ".py"):
        raise ValidationError("source", "must be a notebook (.ipynb) or a module (.py)")
    kind = "notebook" if suffix == ".ipynb" else "module"
    entry = source.name
    if kind == "module":
        classes = find_client_classes(source.read_text())
        if class_name is None:
            if len(classes) != 1:
                raise ValidationError(
                    "class",
                    f"{source.name} defines {len(classes)} ClientBase subclasses "
                    f"({', '.join(classes) or 'none'}); pass --class",
                )
            class_name = classes[0]
        elif class_name not in classes:
            raise ValidationError("class", f"{class_name} is not a ClientBase subclass in {entry}")
        entry = f"{source.name}:{class_name}"
    elif schedule is None:
        raise ValidationError("schedule", "a notebook client needs --schedule")

    directory = workspace().clients / name
    if (directory / CLIENT_FILE).exists() and not force:
        raise ConfigError(f"client {name!r} already exists ({directory}); use --force")
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / source.name
    if source.resolve() != target.resolve():
        shutil.copy2(source, target)
    if kind == "notebook":
        ensure_parameters_cell(target)

    doc = tomlkit.document()
    doc.add(tomlkit.comment(f"Promoted from {source} - see quantstrip/daemon/registry.py"))
    doc["name"] = name
    doc["kind"] = kind
    doc["entry"] = entry
    doc["enabled"] = enabled
    doc["mode"] = mode
    if schedule:
        doc["schedule"] = schedule
    doc["tz"] = tz
    if calendar:
        doc["calendar"] = calendar.upper()
    if parameters:
        table = tomlkit.table()
        for key, value in parameters.items():
            table[key] = value
        doc["parameters"] = table
    toml_path = directory / CLIENT_FILE
    staging = directory / f".{CLIENT_FILE}.new"
    staging.write_text(tomlkit.dumps(doc))
    try:
        staging.replace(toml_path)
        load_client(toml_path)  # validate exactly as the daemon will
    except ConfigError:
        toml_path.unlink(missing_ok=True)
        raise
    return toml_path
