"""Heartbeat files: how a client process tells the daemon it is alive and not stuck.

A beat is a small JSON file replaced atomically (write + rename), so the daemon never reads half a
beat. The runner's main loop beats only while no job has overrun its time limit, so both a wedged
main loop and a job blocked forever stop the beats, and the daemon's heartbeat timeout catches
either. Files live under `<data dir>/run/`, next to the pid files used to find orphans after a
daemon restart.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from quantstrip import clock
from quantstrip.paths import workspace


def run_dir() -> Path:
    path = workspace().home / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def heartbeat_path(client_name: str) -> Path:
    return run_dir() / f"{client_name}.heartbeat"


@dataclass(frozen=True)
class Beat:
    time: float  # epoch seconds
    pid: int
    next_run: str | None = None  # UTC text of the next scheduled job, if any
    jobs_run: int = 0
    jobs_failed: int = 0
    display_name: str | None = None  # the client's own `self.display_name`
    # The job running longest now: [name, seconds running, epoch start], or None.
    longest_job: list[Any] | None = None
    # The last job to finish: [name, succeeded, epoch end], or None before any.
    last_job: list[Any] | None = None


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    # Per process and thread: a job thread and the main loop may both beat.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def beat(path: Path, **fields: Any) -> None:
    write_json_atomic(path, asdict(Beat(time=clock.epoch(), pid=os.getpid(), **fields)))


def read_beat(path: Path) -> Beat | None:
    try:
        data = json.loads(path.read_text())
        return Beat(**data)
    except (OSError, ValueError, TypeError):
        return None
