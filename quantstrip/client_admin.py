"""Create, edit, pause and delete clients: what `quantstrip promote` and the dashboard's client
page do to `clients/<name>/`.

Every change is all or nothing. A new or replaced client is assembled in a staging folder
(`clients/.staging/`, on the file system of clients/), validated exactly as the daemon will
(`registry.load_client`), and only then moved into `clients/` with a rename; a failure leaves
`clients/` as it was (a replaced client is put back). Deleting a client archives its folder and
its run outputs under `<data dir>/archive/` instead of destroying them. Per-client risk limits
live in settings (`[risk.clients.<name>]`).
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomlkit

from quantstrip import clock
from quantstrip.daemon.registry_files import CLIENT_FILE, NAME_PATTERN
from quantstrip.errors import ConfigError, NotFoundError, ValidationError
from quantstrip.paths import PRIVATE_DIR_MODE, make_tree_private, workspace

if TYPE_CHECKING:
    from quantstrip.daemon.registry import ClientConfig

PARAMETERS_CELL = """# Parameters: the daemon injects the values of each run after this cell.
client_name = "research"
mode = "simulation"
run_time = ""
scheduled_for = ""
run_id = 0
"""
STAGING = ".staging"
MISSED_POLICIES = ("skip", "run_once", "run_all")
MODES = ("simulation", "paper", "live")
LIMIT_KEYS = (
    "max_position",
    "max_order_notional",
    "max_daily_loss_strategy",
    "max_daily_loss_account",
    "max_orders_per_minute",
)


@dataclass
class ClientSpec:
    """Everything a client is made of, as the form and the CLI give it."""

    name: str
    source: Path | None = None  # notebook or module to copy in (None: keep the current one)
    schedule: str | None = None  # plain words ("every day at 16:30") or cron ("30 9 * * 1-5")
    tz: str | None = None
    calendar: str | None = None
    class_name: str | None = None
    mode: str = "simulation"
    enabled: bool = True
    display_name: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    time_limit_s: float | None = None
    missed_policy: str | None = None  # catch-up: skip | run_once | run_all
    recipients: list[str] = field(default_factory=list)
    limits: dict[str, float] | None = None  # per-client risk limits; None: leave as they are


def load_client(path: Path) -> ClientConfig:
    """`registry.load_client`, imported when a client is validated: the registry's pydantic
    models cost the clients page about 0.25 s of its start, and its first screen validates
    nothing (it lists the registry's folders)."""
    from quantstrip.daemon.registry import load_client as validate

    return validate(path)


def ensure_parameters_cell(path: Path) -> bool:
    """Add a `parameters`-tagged cell (after leading markdown) if none exists. True if added.

    papermill injects the run's parameters right after that cell; without it they would land at
    the top, before the author's defaults, and be overwritten by them."""
    # Imported here: nbformat brings jsonschema (and its IRI grammar), seconds of a dashboard
    # kernel's start under load, and the clients page needs it only when a notebook is added.
    import nbformat

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


def _check(spec: ClientSpec) -> None:
    import re

    if not re.match(NAME_PATTERN, spec.name or ""):
        raise ValidationError("name", f"{spec.name!r}: letters, digits, _ . - (up to 64)")
    if spec.mode not in MODES:
        raise ValidationError("mode", f"must be one of {', '.join(MODES)}")
    if spec.missed_policy is not None and spec.missed_policy not in MISSED_POLICIES:
        raise ValidationError("missed", f"must be one of {', '.join(MISSED_POLICIES)}")
    for key in spec.limits or {}:
        if key not in LIMIT_KEYS:
            raise ValidationError("limits", f"unknown limit {key!r}")


def _entry(spec: ClientSpec, source: Path) -> tuple[str, str]:
    """(kind, entry) for a source file."""
    from quantstrip.client.runner import find_client_classes

    suffix = source.suffix.lower()
    if suffix == ".ipynb":
        if spec.schedule is None:
            raise ValidationError("schedule", "a notebook client needs a schedule")
        return "notebook", source.name
    if suffix != ".py":
        raise ValidationError("source", "must be a notebook (.ipynb) or a module (.py)")
    classes = find_client_classes(source.read_text())
    class_name = spec.class_name
    if class_name is None:
        if len(classes) != 1:
            raise ValidationError(
                "class",
                f"{source.name} defines {len(classes)} ClientBase subclasses "
                f"({', '.join(classes) or 'none'}); choose one",
            )
        class_name = classes[0]
    elif class_name not in classes:
        raise ValidationError(
            "class", f"{class_name} is not a ClientBase subclass in {source.name}"
        )
    return "module", f"{source.name}:{class_name}"


def _document(spec: ClientSpec, kind: str, entry: str, origin: str) -> tomlkit.TOMLDocument:
    doc = tomlkit.document()
    doc.add(tomlkit.comment(f"{origin} - see quantstrip/daemon/registry.py"))
    doc["name"] = spec.name
    doc["kind"] = kind
    doc["entry"] = entry
    doc["enabled"] = spec.enabled
    doc["mode"] = spec.mode
    if spec.display_name:
        doc["display_name"] = spec.display_name
    if spec.schedule:
        doc["schedule"] = spec.schedule
    if spec.tz:
        doc["tz"] = spec.tz
    if spec.calendar:
        doc["calendar"] = spec.calendar.upper()
    if spec.time_limit_s is not None:
        doc["time_limit_s"] = float(spec.time_limit_s)
    if spec.recipients:
        doc["recipients"] = list(spec.recipients)
    if spec.parameters:
        doc["parameters"] = dict(spec.parameters)
    if spec.missed_policy and kind == "notebook":
        doc["missed"] = {"policy": spec.missed_policy}
    return doc


@contextmanager
def _staging(name: str) -> Iterator[Path]:
    """A folder named like the client in `clients/.staging/`, removed after.

    Inside clients/ so that installing it is a rename on one file system (the data directory may
    be on another disk); one level deeper than a client, so the registry never reads it."""
    staging = workspace().clients / STAGING
    parent = staging / f"{name}-{os.getpid()}-{clock.stamp()}"
    folder = parent / name
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(parent, ignore_errors=True)
        with suppress(OSError):  # another promote may be staging too
            staging.rmdir()


def _install(staged: Path, name: str, replace: bool) -> Path:
    """Move a validated staging folder into clients/ (replacing the old one when asked)."""
    target = workspace().clients / name
    target.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    if target.exists():
        if not replace:
            raise ConfigError(f"client {name!r} already exists ({target}); use --force to replace")
        backup = staged.parent / f".previous-{name}"
        target.rename(backup)
    try:
        staged.rename(target)
    except BaseException:
        if backup is not None:
            backup.rename(target)
        raise
    return target / CLIENT_FILE


def create(spec: ClientSpec, *, replace: bool = False) -> Path:
    """Register a new client (or replace one with `replace`) from a notebook or module."""
    _check(spec)
    if spec.source is None:
        raise ValidationError("source", "choose the notebook or module the client runs")
    source = Path(spec.source)
    if not source.is_file():
        raise ValidationError("source", f"{source} does not exist")
    kind, entry = _entry(spec, source)
    existing = workspace().clients / spec.name / CLIENT_FILE
    if existing.exists() and not replace:
        raise ConfigError(f"client {spec.name!r} already exists ({existing.parent}); use --force")
    with _staging(spec.name) as staged:
        shutil.copy2(source, staged / source.name)
        if kind == "notebook":
            ensure_parameters_cell(staged / source.name)
        doc = _document(spec, kind, entry, f"Promoted from {source}")
        (staged / CLIENT_FILE).write_text(tomlkit.dumps(doc))
        load_client(staged / CLIENT_FILE)  # validate exactly as the daemon will
        path = _install(staged, spec.name, replace)
    if spec.limits is not None:
        set_limits(spec.name, spec.limits)
    return path


def update(spec: ClientSpec) -> Path:
    """Change an existing client: its settings, and its code when `spec.source` is given."""
    _check(spec)
    current = load_client(_toml(spec.name))
    source = Path(spec.source) if spec.source else current.entry_file
    if spec.class_name is None and current.entry_class and source.suffix == ".py":
        spec.class_name = current.entry_class
    kind, entry = _entry(spec, source)
    with _staging(spec.name) as staged:
        for item in current.directory.iterdir():  # keep the client's own files (data, notes)
            if item.name == CLIENT_FILE or item.name.startswith("."):
                continue
            copy = shutil.copytree if item.is_dir() else shutil.copy2
            copy(item, staged / item.name)
        if spec.source:
            shutil.copy2(source, staged / source.name)
            if kind == "notebook":
                ensure_parameters_cell(staged / source.name)
        doc = _document(spec, kind, entry, "Edited from the dashboard")
        (staged / CLIENT_FILE).write_text(tomlkit.dumps(doc))
        load_client(staged / CLIENT_FILE)
        path = _install(staged, spec.name, replace=True)
    if spec.limits is not None:
        set_limits(spec.name, spec.limits)
    return path


def _toml(name: str) -> Path:
    path = workspace().clients / name / CLIENT_FILE
    if not path.is_file():
        raise NotFoundError(f"no client named {name!r}")
    return path


def pause(name: str, paused: bool = True) -> None:
    """Disable (or enable again) a client; the daemon stops (or starts) it within a second."""
    from quantstrip.daemon.registry import set_enabled

    _toml(name)
    set_enabled(name, not paused)


def delete(name: str) -> Path:
    """Remove a client from the registry; its folder and its run outputs are archived (moved to
    `<data dir>/archive/<name>-<stamp>/`), never deleted. Returns the archive folder.

    The data directory may sit on another file system than `clients/` (QUANTSTRIP_HOME on its own
    disk), where a rename fails with EXDEV. So the archive is first completed by copying, and the
    client leaves `clients/` only then: a failure on the way puts the run outputs back, removes
    the partial archive and leaves the client registered as it was."""
    ws = workspace()
    folder = _toml(name).parent
    archive = ws.home / "archive" / f"{name}-{clock.stamp()}"
    archive.mkdir(mode=PRIVATE_DIR_MODE, parents=True)
    os.chmod(archive.parent, PRIVATE_DIR_MODE)  # var/archive, made by this process's umask
    runs = ws.runs / name
    runs_moved = False
    try:
        shutil.copytree(folder, archive / "client", symlinks=True, copy_function=shutil.copy2)
        if runs.exists():
            move_tree(runs, archive / "runs")
            runs_moved = True
        limits = limits_of(name)
        if limits:
            (archive / "risk_limits.toml").write_text(
                tomlkit.dumps({"risk": {"clients": {name: limits}}})
            )
        make_tree_private(archive)
    except BaseException:
        if runs_moved:
            move_tree(archive / "runs", runs)
        shutil.rmtree(archive, ignore_errors=True)
        raise
    # The archive is whole: unregister (one unlink), then clear the folder and the limits.
    (folder / CLIENT_FILE).unlink()
    shutil.rmtree(folder)
    if limits:
        set_limits(name, {})
    return archive


def move_tree(source: Path, target: Path) -> None:
    """Move a folder, within a file system (a rename) or across (copy, then remove the source).

    A failed copy leaves the source whole and removes what was copied."""
    try:
        source.rename(target)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    try:
        shutil.copytree(source, target, symlinks=True, copy_function=shutil.copy2)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    shutil.rmtree(source)


def limits_of(name: str) -> dict[str, Any]:
    from quantstrip import settings

    limits = settings.platform().risk.clients.get(name)
    if limits is None:
        return {}
    return {k: v for k, v in _plain(limits.model_dump()).items() if k in LIMIT_KEYS}


def set_limits(name: str, limits: dict[str, float]) -> None:
    """The client's own risk limits (an empty dict removes them)."""
    from quantstrip import settings

    clients = {
        key: _plain(value.model_dump())
        for key, value in settings.platform().risk.clients.items()
        if key != name
    }
    chosen = _plain(limits)
    if chosen:
        clients[name] = chosen
    settings.set("risk.clients", clients)


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Settings values TOML can hold: no None, no empty table, Decimals as floats."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None or value == {}:
            continue
        if isinstance(value, dict):
            out[key] = _plain(value)
        elif isinstance(value, int | bool):
            out[key] = value
        else:
            number = float(value)
            out[key] = int(number) if key == "max_orders_per_minute" else number
    return out


def describe(name: str) -> ClientSpec:
    """The client as the edit form shows it."""
    config: ClientConfig = load_client(_toml(name))
    return ClientSpec(
        name=config.name,
        source=None,
        schedule=config.schedule,
        tz=config.tz,
        calendar=config.calendar,
        class_name=config.entry_class,
        mode=config.mode,
        enabled=config.enabled,
        display_name=config.display_name,
        parameters=dict(config.parameters),
        time_limit_s=config.time_limit_s,
        missed_policy=str(config.missed.policy) if config.kind == "notebook" else None,
        recipients=list(config.recipients),
        limits=limits_of(name),
    )
