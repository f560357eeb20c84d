"""A run that raises, a run that is cancelled: the sweep records them and the rest go on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest
from support.research import sweep_env, write_notebook

from quantstrip.errors import QuantstripError
from quantstrip.research.store import SweepStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

RAISES_AT_3 = """
if fast == 3:
    raise ValueError(f"no signal for fast={fast}")
result = fast * 2
"""


def test_a_failing_run_is_recorded_and_the_others_finish_then_a_rerun_retries_only_it(
    workspace: Path,
) -> None:
    from quantstrip.research import sweep

    notebook = write_notebook(workspace / "notebooks" / "flaky.ipynb", "fast = 1", RAISES_AT_3)
    first = sweep(notebook, ["fast=1:4:1"], workers=2, progress=False)
    results = first.results().set_index("fast")
    assert first.outcome.ran == 4 and first.outcome.failed == 1
    assert results.loc[3, "status"] == "failed"
    assert results.loc[3, "error"] == "ValueError: no signal for fast=3"
    assert "raise ValueError" in results.loc[3, "traceback"]
    assert Path(results.loc[3, "output"]).exists()  # papermill kept the failed notebook
    assert list(results.loc[[1, 2, 4], "status"]) == ["success"] * 3
    # Started again: the three finished runs are skipped, the failed one is tried again.
    again = sweep(notebook, ["fast=1:4:1"], workers=2, progress=False)
    assert (again.outcome.ran, again.outcome.skipped, again.outcome.failed) == (1, 3, 1)
    assert len(again.results()) == 4


SLEEPS = """
import time
started = time.monotonic()
while time.monotonic() - started < 600:
    time.sleep(0.1)
"""


def _running_kernel(store: SweepStore, deadline_s: float = 240) -> None:
    """Wait until papermill executes a run's notebook (it writes the output notebook first)."""
    deadline = time.monotonic() + deadline_s
    while not list(store.runs.glob("*/output.ipynb")):
        assert time.monotonic() < deadline, "no run started"
        time.sleep(0.2)


def _kernels_of(pid: int) -> list[psutil.Process]:
    """The runs' kernels: direct children of the process that coordinates the sweep (its
    in-process worker starts them; kernels further down belong to other tests' servers)."""
    return [
        p
        for p in psutil.Process(pid).children()
        if p.status() != psutil.STATUS_ZOMBIE and "ipykernel" in " ".join(p.cmdline())
    ]


def test_a_cancel_request_from_the_page_stops_the_running_kernels(workspace: Path) -> None:
    from quantstrip.research import sweep

    notebook = write_notebook(workspace / "notebooks" / "slow.ipynb", "fast = 1", SLEEPS)
    outcome: dict = {}
    thread = threading.Thread(
        target=lambda: outcome.update(
            result=sweep(notebook, ["fast=1,2,3"], name="slow", workers=2, progress=False)
        ),
        daemon=True,
    )
    thread.start()
    store = SweepStore.named("slow")
    _running_kernel(store)
    assert store.manifest()["state"] == "running" and store.running()
    # The printed Dask dashboard link really serves (bokeh is installed with Quantstrip).
    with urllib.request.urlopen(store.manifest()["dashboard"], timeout=60) as answer:
        assert answer.status == 200 and urllib.parse.urlparse(answer.url).hostname == "127.0.0.1"
    # A second start of the same sweep while it runs is refused, not run twice.
    with pytest.raises(QuantstripError, match="already running in another process"):
        sweep(notebook, ["fast=1,2,3"], name="slow", progress=False)
    store.request_cancel()  # what the page's Cancel button does
    thread.join(timeout=180)
    assert not thread.is_alive()
    result = outcome["result"]
    assert result.state == "cancelled"
    assert result.outcome.cancelled >= 1 and result.outcome.ran == result.outcome.cancelled
    assert set(result.results()["status"]) == {"cancelled"}
    assert not store.running() and store.manifest()["state"] == "cancelled"
    deadline = time.monotonic() + 60
    while _kernels_of(os.getpid()):
        assert time.monotonic() < deadline, "kernels still running after the cancel"
        time.sleep(0.2)


def test_ctrl_c_on_the_command_line_cancels_the_runs_and_leaves_no_kernel(
    workspace: Path,
) -> None:
    write_notebook(workspace / "notebooks" / "slow.ipynb", "fast = 1", SLEEPS)
    process = subprocess.Popen(
        [sys.executable, "-m", "quantstrip", "sweep", "notebooks/slow.ipynb", "-p", "fast=1,2",
         "--name", "ctrl-c", "--workers", "2", "--no-progress"],
        cwd=workspace, env=sweep_env(workspace), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    store = SweepStore.named("ctrl-c")
    _running_kernel(store)
    kernels = _kernels_of(process.pid)
    assert kernels, "the runs' kernels are children of the sweep's process"
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=180)
    assert process.returncode == 130, output
    assert "sweep cancelled" in output
    _, alive = psutil.wait_procs(kernels, timeout=30)
    assert alive == []
    assert store.manifest()["state"] == "cancelled"


GROWS = """
import time
hoard = []
started = time.monotonic()
while time.monotonic() - started < 600:
    hoard.append(bytearray(20 * 2**20))
    time.sleep(0.05)
"""


def test_a_run_over_its_memory_or_time_limit_is_stopped_and_recorded_failed(
    workspace: Path,
) -> None:
    from quantstrip.research import sweep

    greedy = write_notebook(workspace / "notebooks" / "greedy.ipynb", "fast = 1", GROWS)
    result = sweep(greedy, ["fast=1"], memory_limit="300MB", workers=1, progress=False)
    run = result.results().iloc[0]
    assert run["status"] == "failed"
    assert run["error"].startswith("memory limit: the kernel used")
    slow = write_notebook(workspace / "notebooks" / "slow.ipynb", "fast = 1", SLEEPS)
    result = sweep(slow, ["fast=1"], time_limit_s=5, workers=1, progress=False)
    run = result.results().iloc[0]
    assert (run["status"], run["error"]) == ("failed", "time limit: the run took longer than 5 s")
    kernel = int(run["kernel_pid"])
    assert not psutil.pid_exists(kernel) or psutil.Process(kernel).status() == psutil.STATUS_ZOMBIE
