"""Where runtime state lives: one data directory, never mixed with code.

`QUANTSTRIP_HOME` (default `./var`) holds the database, logs, run outputs and secrets. The
workspace root (clients/, notebooks/, settings) is `QUANTSTRIP_WORKSPACE`, default the current
directory, so a checkout is a working workspace out of the box.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    root: Path
    home: Path

    @property
    def database(self) -> Path:
        return self.home / "quantstrip.db"

    @property
    def simulation_database(self) -> Path:
        return self.home / "simulation.db"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def runs(self) -> Path:
        return self.home / "runs"

    @property
    def secrets(self) -> Path:
        return self.home / "secrets"

    @property
    def clients(self) -> Path:
        return self.root / "clients"

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    @property
    def settings_file(self) -> Path:
        return self.home / "settings.toml"

    @property
    def user_queries(self) -> Path:
        return self.home / "queries"

    @property
    def statements(self) -> Path:
        return self.home / "statements"

    @property
    def outbox(self) -> Path:
        """Messages that could not be sent, kept whole (attachments too) for a faithful resend."""
        return self.home / "outbox"


def workspace() -> Workspace:
    """The workspace of this process, resolved from the environment each call (tests change it)."""
    root = Path(os.environ.get("QUANTSTRIP_WORKSPACE") or Path.cwd()).resolve()
    home_env = os.environ.get("QUANTSTRIP_HOME")
    home = Path(home_env).resolve() if home_env else root / "var"
    return Workspace(root=root, home=home)


def init_workspace(ws: Workspace | None = None) -> Workspace:
    """Create the data directory tree; safe to call any number of times."""
    ws = ws or workspace()
    for directory in (ws.home, ws.logs, ws.runs, ws.user_queries, ws.statements, ws.clients):
        directory.mkdir(parents=True, exist_ok=True)
    ws.secrets.mkdir(parents=True, exist_ok=True)
    os.chmod(ws.secrets, 0o700)
    return ws
