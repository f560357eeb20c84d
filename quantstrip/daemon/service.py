"""`quantstrip service install`: the systemd user unit that keeps the daemon running.

`KillMode=process`: systemd signals the daemon only. On `systemctl stop` the daemon stops its
clients gracefully (each gets SIGTERM -> `on_stop`, SIGKILL after its `stop_timeout_s`). When
the daemon dies (a crash, an OOM kill) systemd leaves the clients running and `Restart=` starts
a new daemon, which adopts them (same processes, no strategy restarted) or stops what changed.
With the default KillMode every client would be killed with the daemon (and recorded as a
crash); with `mixed` they would be SIGKILLed whenever the daemon exits.
"""

from __future__ import annotations

import sys
from pathlib import Path

from quantstrip.paths import Workspace, workspace

UNIT_NAME = "quantstrip.service"


def default_unit_path() -> Path:
    return Path.home() / ".config" / "systemd" / "user" / UNIT_NAME


def _quote(value: str) -> str:
    """systemd quoting for a value that may contain spaces, quotes or backslashes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unit_text(ws: Workspace | None = None, python: str | None = None) -> str:
    ws = ws or workspace()
    # sys.executable, not its resolved target: the venv's bin/python is what carries the venv.
    interpreter = python or sys.executable
    return f"""[Unit]
Description=Quantstrip daemon (supervises trading clients and scheduled notebooks)

[Service]
Type=simple
WorkingDirectory={ws.root}
Environment={_quote(f"QUANTSTRIP_HOME={ws.home}")}
Environment={_quote(f"QUANTSTRIP_WORKSPACE={ws.root}")}
Environment=PYTHONUNBUFFERED=1
ExecStart={_quote(interpreter)} -m quantstrip daemon
Restart=on-failure
RestartSec=5
KillMode=process
TimeoutStopSec=60

[Install]
WantedBy=default.target
"""


def install_unit(path: Path | None = None, ws: Workspace | None = None) -> Path:
    target = path or default_unit_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(unit_text(ws))
    return target
