"""Where runtime state lives: one data directory, never mixed with code, private to its owner.

`QUANTSTRIP_HOME` (default `./var`) holds the database, logs, run outputs and secrets. The
workspace root (clients/, notebooks/, settings) is `QUANTSTRIP_WORKSPACE`, default the current
directory, so a checkout is a working workspace out of the box.

The data directory holds the ledger, the settings, the vault and the logs: no other local user
may read any of it. It is created 0700, every process Quantstrip starts runs with umask 077 (the
CLI sets it, and the daemon, the dashboard, its kernels and the clients inherit it), and each
start warns about anything in it that became readable or writable by others.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

PRIVATE_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
log = logging.getLogger("quantstrip.security")


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


# How far up from the current folder a workspace is looked for: a notebook's kernel starts in
# the notebook's folder (notebooks/, clients/<name>/), not in the workspace root.
SEARCH_UP = 3


def _root_from(cwd: Path) -> Path:
    """The nearest folder at or above `cwd` that holds a workspace database, else `cwd`."""
    for folder in [cwd, *cwd.parents][: SEARCH_UP + 1]:
        if (folder / "var" / "quantstrip.db").is_file():
            return folder
    return cwd


def workspace() -> Workspace:
    """The workspace of this process, resolved from the environment each call (tests change it).

    `QUANTSTRIP_WORKSPACE` names the root; without it, the current folder or the nearest one
    above it that holds `var/quantstrip.db` (a guide opened in JupyterLab runs in notebooks/).
    """
    named = os.environ.get("QUANTSTRIP_WORKSPACE")
    root = Path(named).resolve() if named else _root_from(Path.cwd().resolve())
    home_env = os.environ.get("QUANTSTRIP_HOME")
    home = Path(home_env).resolve() if home_env else root / "var"
    return Workspace(root=root, home=home)


def private_umask() -> int:
    """Make files this process (and its children) create private to the owner; returns the
    previous umask."""
    return os.umask(PRIVATE_UMASK)


def init_workspace(ws: Workspace | None = None) -> Workspace:
    """Create the data directory tree (0700); safe to call any number of times. Warns about
    anything in the data directory that others can read or write."""
    ws = ws or workspace()
    ws.clients.mkdir(parents=True, exist_ok=True)
    for directory in (ws.home, ws.logs, ws.runs, ws.user_queries, ws.statements, ws.secrets):
        if not directory.exists():
            directory.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
            os.chmod(directory, PRIVATE_DIR_MODE)
    os.chmod(ws.secrets, PRIVATE_DIR_MODE)
    for path, mode in loosened(ws):
        log.warning(
            "%s is open to other users (mode %s); run `quantstrip init` to make the data "
            "directory private again",
            path,
            oct(mode),
        )
    return ws


def _open_to_others(mode: int) -> bool:
    return bool(mode & (stat.S_IRWXG | stat.S_IRWXO))


def _data_tree(ws: Workspace) -> list[Path]:
    if not ws.home.exists():
        return []
    return [ws.home, *sorted(ws.home.rglob("*"))]


def loosened(ws: Workspace) -> list[tuple[Path, int]]:
    """Everything in the data directory that group or others may read, write or enter."""
    found = []
    for path in _data_tree(ws):
        try:
            mode = stat.S_IMODE(path.lstat().st_mode)
        except FileNotFoundError:  # a file removed meanwhile (a SQLite -journal)
            continue
        if not path.is_symlink() and _open_to_others(mode):
            found.append((path, mode))
    return found


def make_private(ws: Workspace) -> list[Path]:
    """Take group and other permissions off everything in the data directory; returns what
    changed."""
    changed = []
    for path, mode in loosened(ws):
        os.chmod(path, mode & ~(stat.S_IRWXG | stat.S_IRWXO))
        changed.append(path)
    return changed


def make_tree_private(root: Path) -> None:
    """Make `root` and everything under it private to the owner (folders 0700, files 0600), for
    things moved into the data directory from elsewhere (a deleted client's folder keeps the
    modes it had beside the code). Symbolic links are left alone: chmod would follow them out."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        os.chmod(path, PRIVATE_DIR_MODE if path.is_dir() else PRIVATE_FILE_MODE)
