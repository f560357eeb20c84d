"""The client registry's files as they are on disk, read without validating them.

A dashboard page that only lists clients (the clients page's chooser, the monitor's first
screen with the daemon down) needs their names and a few plain values. Validating a client.toml
means importing pydantic and building the registry's models: about 0.25 s of the page's start,
most of what those pages add to a trivial one. This module reads the files with the standard
library's TOML parser and imports nothing heavy; `quantstrip.daemon.registry` validates them
(and re-exports what is defined here), and is what acts on a client: the daemon, and the pages
once the user creates, edits or acts on one.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from quantstrip.paths import workspace

CLIENT_FILE = "client.toml"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MODES = ("simulation", "paper", "live")


def client_files(root: Path | None = None) -> list[Path]:
    root = root or workspace().clients
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob(f"*/{CLIENT_FILE}") if p.is_file())


def client_names(root: Path | None = None) -> list[str]:
    """Every registered client's name (its folder), valid or not: the keys of
    `registry.load_registry`, without validating anything."""
    return [path.parent.name for path in client_files(root)]


@dataclass(frozen=True)
class ClientFile:
    """What a client.toml states, for showing it; not validated. A value of the wrong type is
    left out (its default shown); a file that is not TOML has `error`, worded as
    `registry.load_client` words it."""

    name: str
    path: Path
    kind: str = "module"
    entry: str = ""
    enabled: bool = True
    mode: str = "simulation"
    display_name: str | None = None
    schedule: str | None = None
    error: str | None = None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def peek_client(path: Path) -> ClientFile:
    name = path.parent.name
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        return ClientFile(name=name, path=path, error=f"{path}: not valid TOML: {exc}")
    kind = data.get("kind") if data.get("kind") in ("module", "notebook") else "module"
    enabled = data.get("enabled", True)
    mode = data.get("mode", "simulation")
    return ClientFile(
        name=name,
        path=path,
        kind=str(kind),
        entry=str(data.get("entry", "")),
        enabled=enabled if isinstance(enabled, bool) else True,
        mode=mode if mode in MODES else "simulation",
        display_name=_text(data.get("display_name")),
        schedule=_text(data.get("schedule")),
    )


def peek_registry(root: Path | None = None) -> dict[str, ClientFile]:
    return {path.parent.name: peek_client(path) for path in client_files(root)}
