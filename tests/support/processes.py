"""Several Python processes started so that they hit a shared file at the same moment."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

START_DELAY_S = 2.0  # time for every interpreter to start before the common start time
# The common start time is on CLOCK_MONOTONIC, which every process on the machine shares and
# time-machine never moves (the test session's wall clock may be travelling: another process
# comparing it with its own real time.time() would wait for months).


def run_at_once(
    script: str,
    argument_lists: Sequence[Sequence[str]],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = 300.0,
) -> None:
    """Run `script` once per argument list; each receives the common start time (seconds on
    `time.monotonic()`) as its last argument and should sleep until then. Fails
    with the stderr of any process that exits non-zero."""
    start_at = str(time.monotonic() + START_DELAY_S)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, *arguments, start_at],
            env=env,
            cwd=cwd,
            stderr=subprocess.PIPE,
            text=True,
        )
        for arguments in argument_lists
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=timeout_s)
        assert proc.returncode == 0, err
