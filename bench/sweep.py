"""Parameter sweeps: parallel speed-up, per-run overhead, growth with the number of runs.

Runs the research notebook (notebooks/research/ma_crossover.ipynb, one year of daily bars) in a
temporary workspace and prints, all measured in this process:
- baseline: the same N runs one after another with plain `papermill.execute_notebook` (a fresh
  kernel each, each in its own data directory) plus the run's metrics, as a user would script it;
- the sweep on the in-process LocalCluster with one worker thread per core (warm kernels), its
  speed-up over the baseline (goal >= 1.7x on 2 cores), and the same with --fresh-kernels;
- per-run cost: one papermill run alone, a kernel start alone (the floor of a fresh run), and a
  one-worker sweep's time per run (what the sweep adds or saves per run);
- growth: the sweep of 4N runs against N runs (4.0x is linear).
The machine's load average is printed before and after: on a shared machine the ratios, taken
within one process minutes apart, mean more than the absolute times.
Usage: python bench/sweep.py [N] (default 16).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "research" / "ma_crossover.ipynb"
PERIOD = ("2024-01-02", "2024-12-31")


def grid(n: int) -> dict[str, list]:
    """n runs (a multiple of 16): fast x slow (x symbol for more than 16)."""
    fast, slow = [5, 10, 15, 20], [30, 40, 50, 60]
    symbols = ["SPY", "AAPL", "MSFT", "XOM", "TLT", "GLD", "QQQ", "IWM"][: max(1, n // 16)]
    return {"fast": fast, "slow": slow, "symbol": symbols}


def timed(action) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def plain_papermill(root: Path, points: list[dict], label: str) -> None:
    """What a user scripts by hand: one papermill run per point, each in its own directory."""
    import papermill

    from quantstrip.research.metrics import run_metrics

    for i, point in enumerate(points):
        home = root / "plain" / f"{label}-{i}"
        home.mkdir(parents=True)
        os.environ["QUANTSTRIP_HOME"] = str(home)
        try:
            papermill.execute_notebook(
                str(NOTEBOOK),
                str(home / "output.ipynb"),
                parameters={**point, "start": PERIOD[0], "end": PERIOD[1]},
                kernel_name="python3",
                progress_bar=False,
            )
        finally:
            os.environ["QUANTSTRIP_HOME"] = str(root / "var")
        run_metrics(home / "simulation.db", PERIOD)


def kernel_start() -> None:
    from jupyter_client import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel(stdout=open(os.devnull, "wb"), stderr=open(os.devnull, "wb"))  # noqa: SIM115
    client = km.client()
    client.start_channels()
    client.wait_for_ready(timeout=120)
    client.stop_channels()
    km.shutdown_kernel(now=True)


def main(n: int = 16) -> None:
    root = Path(tempfile.mkdtemp(prefix="qs-bench-sweep-"))
    os.environ.update(
        QUANTSTRIP_WORKSPACE=str(root), QUANTSTRIP_HOME=str(root / "var"), QUANTSTRIP_KEYRING="0"
    )
    from quantstrip.research import sweep
    from quantstrip.research.grid import expand, from_mapping

    cores = os.cpu_count() or 1
    load_before = os.getloadavg()
    points = expand(from_mapping(grid(n)))
    assert len(points) == n, len(points)
    common = dict(start=PERIOD[0], end=PERIOD[1], progress=False, say=lambda _: None)

    def run(label: str, size: int, **options) -> float:  # type: ignore[no-untyped-def]
        result: list = []
        seconds = timed(
            lambda: result.append(
                sweep(NOTEBOOK, grid(size), name=f"{label}-{size}", **common, **options)
            )
        )
        failed = result[0].outcome.failed
        assert result[0].outcome.ran == size and not failed, f"{label}: {failed} failed"
        return seconds

    try:
        import papermill  # noqa: F401 - imported once, outside every measurement

        plain_papermill(root, points[:1], "warm-up")  # disk cache, kernelspec lookup, imports
        one = timed(lambda: plain_papermill(root, points[:1], "single"))
        start = timed(kernel_start)
        baseline = timed(lambda: plain_papermill(root, points, "sequential"))
        local = run("local", n, workers=cores)
        fresh = run("fresh", n, workers=cores, fresh_kernels=True)
        serial = run("serial", n, workers=1)
        big = run("local", 4 * n, workers=cores)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load_after = os.getloadavg()
    rows = [
        (f"baseline: {n} papermill runs one after another", baseline, f"{baseline / n:.2f} s/run"),
        (f"sweep, LocalCluster, {cores} workers, warm kernels", local,
         f"speed-up {baseline / local:.2f}x"),
        (f"sweep, LocalCluster, {cores} workers, fresh kernels", fresh,
         f"speed-up {baseline / fresh:.2f}x"),
        ("one papermill run alone", one, ""),
        ("one kernel start (the floor of a fresh run)", start, ""),
        ("sweep, 1 worker, time per run (warm kernel)", serial / n,
         f"{serial / n / one:.2f}x a lone papermill run"),
        (f"sweep, {cores} workers, {4 * n} runs", big,
         f"{big / local:.2f}x the {n}-run time (4.00x is linear)"),
    ]  # fmt: skip
    print(f"sweep of the research notebook, {PERIOD[0]} to {PERIOD[1]}, {cores} cores")
    print(f"load average (1 min) before {load_before[0]:.1f}, after {load_after[0]:.1f}")
    for what, seconds, note in rows:
        print(f"{what:52} {seconds:8.2f} s  {note}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 16)
