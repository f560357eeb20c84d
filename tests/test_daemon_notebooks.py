"""Notebook clients under a real daemon: papermill runs in a fresh kernel, failures, limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest
from support.daemon import DaemonHandle, pid_alive, wait_until, write_notebook_client

from quantstrip.daemon.control import ControlError

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


def finished(daemon: DaemonHandle, name: str, count: int = 1) -> list[dict]:
    runs = [r for r in daemon.runs(name) if r["status"] != "running"]
    return runs if len(runs) >= count else []


def test_notebook_failing_in_cell_3_keeps_its_output_and_records_the_error(
    workspace: Path, daemon: DaemonHandle
) -> None:
    write_notebook_client(
        "report",
        [
            # cell 1 is the parameters cell
            "import json, pathlib\nvalue = 42\npathlib.Path('params.json').write_text(json.dumps("
            "{'client_name': client_name, 'mode': mode, 'run_time': run_time}))",
            "raise ValueError(f'bad data: {value}')",  # cell 3
            "print('never reached')",
        ],
        mode="paper",
    )
    daemon.start()
    assert daemon.status("report").state == "scheduled"
    result = daemon.control.run_now("report")
    run = wait_until(lambda: finished(daemon, "report"), 90, "the run to finish")[0]
    assert run["id"] == result["run_id"] and run["trigger"] == "manual"
    assert run["status"] == "failed"
    assert run["error"] == "ValueError: bad data: 42"
    assert run["error_cell"] == 3
    assert "ValueError" in run["traceback"] and "\x1b[" not in run["traceback"]
    assert run["duration_s"] > 0 and run["ended_at"] >= run["started_at"]

    output = Path(run["output_path"])
    assert output.parent == workspace / "var" / "runs" / "report"
    nb = nbformat.read(output, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any(o.get("ename") == "ValueError" for o in errors)
    params = json.loads((workspace / "clients/report/params.json").read_text())
    assert params["client_name"] == "report" and params["mode"] == "paper"
    assert params["run_time"] == run["started_at"]

    status = wait_until(
        lambda: (s := daemon.status("report")).last_error and s, 10, "last_error shown"
    )
    assert "in cell 3" in status.last_error and "bad data" in status.last_error
    assert daemon.events("report", "run_failed")


def test_notebook_over_its_time_limit_is_killed_with_its_kernel(
    workspace: Path, daemon: DaemonHandle
) -> None:
    write_notebook_client(
        "slow",
        [
            "import os, pathlib\npathlib.Path('kernel.pid').write_text(str(os.getpid()))",
            "import time\ntime.sleep(600)",
        ],
        time_limit_s=6.0,
    )
    daemon.start()
    daemon.control.run_now("slow")
    with pytest.raises(ControlError, match="already running"):
        daemon.control.run_now("slow")
    run = wait_until(lambda: finished(daemon, "slow"), 90, "the run to be stopped")[0]
    assert run["status"] == "timeout"
    assert "time limit of 6 s" in run["error"]
    assert not pid_alive(run["pid"])
    kernel_pid = int((workspace / "clients/slow/kernel.pid").read_text())
    wait_until(lambda: not pid_alive(kernel_pid), 10, "the kernel to be gone too")
    assert daemon.status("slow").state == "scheduled"
    assert daemon.events("slow", "run_timeout")


def test_scheduled_notebook_runs_each_slot_once(workspace: Path, daemon: DaemonHandle) -> None:
    write_notebook_client(
        "every3",
        ["with open('slots.txt', 'a') as f:\n    f.write(scheduled_for + '\\n')"],
        schedule="every 3 seconds",
    )
    daemon.start()
    status = daemon.status("every3")
    assert status.next_run is not None and status.schedule == "every 3 seconds"
    runs = wait_until(lambda: finished(daemon, "every3", 2), 90, "two scheduled runs")
    assert all(r["status"] == "success" and r["trigger"] == "schedule" for r in runs)
    slots = (workspace / "clients/every3/slots.txt").read_text().split("\n")[:-1]
    assert len(slots) == len(set(slots)) >= 2
    # Slots are aligned to the interval, so a restarted daemon computes the same ones.
    assert all(int(s[17:19]) % 3 == 0 and s.endswith(".000000") for s in slots)


@pytest.mark.real_clock  # the slot is set from this process's clock, the daemon reads its own
def test_missed_run_policies_after_downtime(workspace: Path, daemon: DaemonHandle) -> None:
    # A daily slot two minutes ago (any hour, any day: the cron names that minute daily): the
    # daemon was "down" at that time.
    slot = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
    cron = f"{slot.minute} {slot.hour} * * *"
    cell = ["with open('slots.txt', 'a') as f:\n    f.write(scheduled_for + '\\n')"]
    write_notebook_client(
        "catch_up", cell, schedule=cron, missed={"policy": "run_once", "grace_s": 600}
    )
    write_notebook_client("skipper", cell, schedule=cron, missed={"policy": "skip"})
    write_notebook_client(
        "too_late", cell, schedule=cron, missed={"policy": "run_once", "grace_s": 30}
    )
    daemon.start()
    # The policy is part of the client's status, and the monitor shows it.
    from quantstrip.dashboard.monitor import MonitorPage

    status = daemon.status("catch_up")
    assert status.missed_policy == "run_once" and daemon.status("skipper").missed_policy == "skip"
    monitor = MonitorPage()
    assert "missed runs: run_once" in monitor.rows["catch_up"].summary.value
    assert "missed runs: skip" in monitor.rows["skipper"].summary.value
    run = wait_until(lambda: finished(daemon, "catch_up"), 90, "the missed run")[0]
    assert run["trigger"] == "missed" and run["status"] == "success"
    assert run["scheduled_for"] == slot.strftime("%Y-%m-%d %H:%M:%S.%f")
    assert daemon.events("catch_up", "missed_run")

    # Restarting the daemon does not run the same slot again. A daemon answers its control API
    # only once its registry is applied, and catch-up runs are claimed while it is applied: what
    # it decided to catch up is in the runs table when start() returns (no sleep needed).
    assert daemon.stop() == 0
    daemon.start()
    assert daemon.status("catch_up").state == "scheduled"
    assert len(daemon.runs("catch_up")) == 1
    assert daemon.runs("skipper") == [] and daemon.runs("too_late") == []
    assert (workspace / "clients/catch_up/slots.txt").read_text().count("\n") == 1


DECLARED = """client_name = ''
scheduled_for = ''
run_time = ''
mode = ''
run_id = 0
lookback: int = 20  # range: 5..250
threshold = 0.5  # min: 0, max: 1
symbol = 'SPY'
"""
WRITE_PARAMETERS = (
    "import json, pathlib\npathlib.Path('seen.json').write_text(json.dumps("
    "{'lookback': lookback, 'threshold': threshold, 'symbol': symbol}))"
)


def test_notebook_parameters_are_checked_against_the_parameters_cell(
    workspace: Path, daemon: DaemonHandle
) -> None:
    cases = {
        "wrong_type": ({"lookback": "twenty"}, "lookback: expected int, got str 'twenty'"),
        "out_of_range": ({"lookback": 1000}, "lookback: 1000 is above the maximum 250"),
        "inferred_type": ({"threshold": "high"}, "threshold: expected float, got str 'high'"),
        "below_min": ({"threshold": -0.5}, "threshold: -0.5 is below the minimum 0"),
        "undeclared": ({"lookbak": 30}, "lookbak: not declared in the parameters cell"),
        "valid": ({"lookback": 60, "threshold": 1, "symbol": "QQQ"}, None),
    }
    for name, (parameters, _) in cases.items():
        write_notebook_client(
            name, [WRITE_PARAMETERS], parameters_cell=DECLARED, parameters=parameters
        )
    daemon.start()
    for name in cases:
        daemon.control.run_now(name)
    for name, (_, error) in cases.items():
        run = wait_until(lambda n=name: finished(daemon, n), 90, f"{name}'s run")[0]
        seen = workspace / "clients" / name / "seen.json"
        if error is None:
            assert run["status"] == "success", run
            assert json.loads(seen.read_text()) == {
                "lookback": 60,
                "threshold": 1,
                "symbol": "QQQ",
            }
            continue
        assert run["status"] == "failed", (name, run)
        assert error in run["error"], (name, run["error"])
        assert not seen.exists(), f"{name} ran with bad parameters"
        assert daemon.events(name, "run_failed")
