"""`make bench` runs every script in bench/; a script that breaks stops it. bench/scheduler.py
broke when every-second schedules became calendar-anchored slots (it read the trigger's
start_date, which they no longer have), and nothing ran it until a fresh-clone `make bench`.
Each script runs here with small sizes, for what it prints, not for its figures (performance is
never asserted in a test). pages.py (a Jupyter server and Chromium, already driven by the browser
tests) and sweep.py (Dask clusters, minutes) are left to `make bench`; pages_ab.py runs here
once (two servers, one pair of loads), the checkout compared with itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUNS = {
    "cli_start.py": ["--runs", "1"],
    "daemon_memory.py": ["--settle", "0.5"],
    "ingest.py": ["--count", "200", "--events", "1000", "--position", "100", "throughput"],
    "notebook_latency.py": ["--runs", "1"],
    "pages_ab.py": ["--pairs", "1", "--page", "notifications"],
    "report.py": ["2000", "--repeat", "1"],
    "scheduler.py": ["--fires", "2"],
}


@pytest.mark.parametrize("script", sorted(RUNS))
def test_the_bench_script_runs_and_prints_its_ratio(script: str, tmp_path: Path) -> None:
    env = {**os.environ, "QUANTSTRIP_KEYRING": "0", "QUANTSTRIP_WORKSPACE": str(tmp_path)}
    env["QUANTSTRIP_HOME"] = str(tmp_path / "var")
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *RUNS[script]],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "ratio" in done.stdout, done.stdout[-2000:]


def test_every_bench_script_is_run_here_or_named_as_left_out() -> None:
    left_out = {"pages.py", "sweep.py"}
    assert {p.name for p in (REPO / "bench").glob("*.py")} == set(RUNS) | left_out
