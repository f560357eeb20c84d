"""Idle daemon memory: RSS and USS of `python -m quantstrip daemon` with no client, against a
bare interpreter (`python -c` sleeping) measured in the same run.

The daemon imports only what supervising needs; papermill lives in the notebook fork server
(a separate process, reported on its own line once a notebook client exists). Goal (issue 14):
idle daemon <= 60 MiB RSS.

Usage: .venv/bin/python bench/daemon_memory.py [--settle 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

MIB = 1024 * 1024


def memory(pid: int) -> tuple[float, float]:
    info = psutil.Process(pid).memory_full_info()
    return info.rss / MIB, info.uss / MIB


def wait_for(condition, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise SystemExit(f"timed out after {timeout_s} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--settle", type=float, default=3.0, help="seconds idle before measuring")
    settle = parser.parse_args().settle
    baseline = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    time.sleep(1)
    base_rss, base_uss = memory(baseline.pid)
    baseline.kill()
    print(f"baseline python -c (sleeping): RSS {base_rss:.1f} MiB, USS {base_uss:.1f} MiB")

    from quantstrip.daemon.control import ControlClient, socket_path

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = dict(os.environ, QUANTSTRIP_WORKSPACE=str(root), QUANTSTRIP_HOME=str(root / "var"))
        daemon = subprocess.Popen(
            [sys.executable, "-m", "quantstrip", "daemon"],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            control = ControlClient(socket_path(root / "var"))
            wait_for(control.available, 60)
            time.sleep(settle)
            rss, uss = memory(daemon.pid)
            print(
                f"idle daemon, no client:        RSS {rss:.1f} MiB, USS {uss:.1f} MiB  "
                f"ratio {rss / base_rss:.2f}x baseline RSS"
            )
            for child in psutil.Process(daemon.pid).children():
                c_rss = memory(child.pid)[0]
                print(f"  child {child.name()} (pid {child.pid}): RSS {c_rss:.1f} MiB")
        finally:
            daemon.terminate()
            daemon.wait(30)


if __name__ == "__main__":
    main()
