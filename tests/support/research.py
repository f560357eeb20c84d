"""Sweeps in tests: a demo workspace with the research notebook, a real `dask scheduler` with
two `dask worker` processes on 127.0.0.1, and the comparison with the portfolio report."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "research" / "ma_crossover.ipynb"
# Half a year of bars keeps each run short; slow <= 40 leaves room for signals.
PERIOD = ("2024-01-02", "2024-06-28")
GRID = {"fast": [5, 10], "slow": [20, 40], "symbol": ["SPY", "AAPL"]}  # 8 runs


def checksum(path: Path) -> str:
    """The database and its WAL together: a write to either changes it."""
    digest = hashlib.sha256()
    for part in (path, path.with_name(path.name + "-wal")):
        if part.exists():
            digest.update(part.read_bytes())
    return digest.hexdigest()


def copy_notebook(root: Path) -> Path:
    target = root / "notebooks" / "research" / NOTEBOOK.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(NOTEBOOK, target)
    return target


def write_notebook(path: Path, parameters: str, body: str) -> Path:
    """A small notebook: a tagged parameters cell and one body cell."""
    import nbformat

    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(
        cells=[cell, nbformat.v4.new_code_cell(body)],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def same(a: object, b: object) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)) or a is pd.NA:
        return b is None or (isinstance(b, float) and math.isnan(b)) or b is pd.NA
    return a == b


def start_dask_cluster(directory: Path, env: dict[str, str], workers: int = 2) -> Iterator[str]:
    """A `dask scheduler` and `workers` `dask worker` processes (one thread each) on 127.0.0.1;
    yields the scheduler address and stops every process it started."""
    directory.mkdir(parents=True, exist_ok=True)
    scheduler_file = directory / "scheduler.json"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    logs = [open(directory / f"process-{i}.log", "wb") for i in range(workers + 1)]  # noqa: SIM115
    processes = [
        subprocess.Popen(
            [*dask, "--host", "127.0.0.1", "--port", "0", "--dashboard-address", "127.0.0.1:0",
             "--scheduler-file", str(scheduler_file)],
            env=env, cwd=directory, stdout=logs[0], stderr=subprocess.STDOUT,
        )
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not scheduler_file.exists():
            assert time.monotonic() < deadline, (directory / "process-0.log").read_text()
            assert processes[0].poll() is None, (directory / "process-0.log").read_text()
            time.sleep(0.2)
        time.sleep(0.2)  # the file is written in one go, but give the writer a moment to close
        address = json.loads(scheduler_file.read_text())["address"]
        for i in range(workers):
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "distributed.cli.dask_worker", address,
                     "--nthreads", "1", "--host", "127.0.0.1", "--name", f"worker-{i}",
                     "--dashboard-address", "127.0.0.1:0"],
                    env=env, cwd=directory, stdout=logs[i + 1], stderr=subprocess.STDOUT,
                )
            )  # fmt: skip
        from distributed import Client

        with Client(address, timeout="60s", set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=180)
        yield address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs:
            log.close()


def sweep_env(root: Path) -> dict[str, str]:
    return dict(
        os.environ,
        QUANTSTRIP_WORKSPACE=str(root),
        QUANTSTRIP_HOME=str(root / "var"),
        QUANTSTRIP_KEYRING="0",
    )
