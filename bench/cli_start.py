"""CLI start time: `quantstrip --help` and a command's own help, against a bare interpreter start
(`python -c pass`) measured in the same run.

A command's module (pandas, DuckDB, Jupyter...) is imported only when that command runs, so
listing the commands costs little more than starting Python. Reported: median wall time of N
runs of each, in ms, and the ratio to the baseline. Goal (issue 14): `quantstrip --help` <= 0.15 s.

Usage: .venv/bin/python bench/cli_start.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).with_name("quantstrip")


def median_ms(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    baseline = median_ms([sys.executable, "-c", "pass"], runs)
    print(f"baseline python -c pass: {baseline:.0f} ms (median of {runs})")
    cases = {
        "quantstrip --help": [str(BIN), "--help"],
        "python -m quantstrip --help": [sys.executable, "-m", "quantstrip", "--help"],
        "quantstrip clients --help": [str(BIN), "clients", "--help"],
        "quantstrip report --help": [str(BIN), "report", "--help"],
    }
    for name, cmd in cases.items():
        ms = median_ms(cmd, runs)
        print(f"{name:30} {ms:6.0f} ms  ratio {ms / baseline:5.2f}x baseline")


if __name__ == "__main__":
    main()
