"""The daemon SIGKILLed with 10 clients running, then restarted: everything comes back, no slot
of a scheduled notebook runs twice, nothing the old daemon started is left running."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.daemon import (
    TICKER,
    DaemonHandle,
    pid_alive,
    ticks,
    wait_until,
    write_module_client,
    write_notebook_client,
)

pytestmark = pytest.mark.timeout(240)

MODULES = [f"mod{i}" for i in range(8)]
NOTEBOOKS = ["nb_a", "nb_b"]


def slots(root: Path, name: str) -> list[str]:
    path = root / "clients" / name / "slots.txt"
    return path.read_text().split("\n")[:-1] if path.exists() else []


def succeeded(daemon: DaemonHandle, name: str, after_id: int = 0) -> list[dict]:
    return [r for r in daemon.runs(name) if r["status"] == "success" and r["id"] > after_id]


def all_running(daemon: DaemonHandle, exclude_pids: set[int]) -> dict[str, int] | None:
    statuses = daemon.statuses()
    pids = {}
    for name in MODULES:
        s = statuses[name]
        if s.state != "running" or not s.last_heartbeat or s.pid in exclude_pids:
            return None
        pids[name] = s.pid
    return pids


def test_ten_clients_survive_a_daemon_sigkill_without_duplicate_runs(
    workspace: Path, daemon: DaemonHandle
) -> None:
    for name in MODULES:
        write_module_client(name, TICKER)
    for name in NOTEBOOKS:
        write_notebook_client(
            name,
            ["import time\nwith open('slots.txt', 'a') as f:\n    f.write(scheduled_for + '\\n')"],
            schedule="every 3 seconds",
            missed={"policy": "run_once", "grace_s": 60},
        )
    daemon.start()
    first = wait_until(lambda: all_running(daemon, set()), 90, "8 module clients running")
    for name in NOTEBOOKS:
        wait_until(lambda n=name: succeeded(daemon, n), 90, f"{name} to run once")

    daemon.kill()
    # The clients outlive a SIGKILLed daemon (own sessions) until the next daemon takes over.
    assert all(pid_alive(pid) for pid in first.values())
    last_run_ids = {n: max(r["id"] for r in daemon.runs(n)) for n in NOTEBOOKS}
    time.sleep(1)

    daemon.start()
    second = wait_until(
        lambda: all_running(daemon, set(first.values())), 90, "8 module clients back"
    )
    assert not any(pid_alive(pid) for pid in first.values())
    for name in MODULES:
        count = ticks(workspace, name)
        wait_until(lambda n=name, c=count: ticks(workspace, n) > c, 30, f"{name} ticking")
    for name in NOTEBOOKS:
        wait_until(lambda n=name: succeeded(daemon, n, last_run_ids[n]), 90, f"{name} runs again")
    assert set(second) == set(MODULES)

    for name in NOTEBOOKS:
        runs = daemon.runs(name)
        scheduled = [r["scheduled_for"] for r in runs if r["scheduled_for"]]
        assert len(scheduled) == len(set(scheduled)), "a slot was claimed twice"
        ran = slots(workspace, name)
        assert len(ran) == len(set(ran)), f"a slot of {name} executed twice: {ran}"
        assert {r["status"] for r in runs} <= {"success", "interrupted", "running"}
    assert daemon.stop() == 0
    assert not any(pid_alive(pid) for pid in second.values())
