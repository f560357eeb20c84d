"""The daemon SIGKILLed with 10 clients running, then restarted: module clients are adopted (the
same processes keep running), a client changed or disabled meanwhile is restarted or stopped, no
slot of a scheduled notebook runs twice, nothing the old daemon started is left unsupervised."""

from __future__ import annotations

import itertools
import os
import re
import signal
import time
from datetime import datetime
from pathlib import Path

import psutil
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

from quantstrip.daemon.notebook_clients import PRELAUNCH_S

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

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
    # While the daemon is down, one client is edited and another disabled.
    changed, disabled = MODULES[0], MODULES[1]
    write_module_client(changed, TICKER, stop_timeout_s=2.5)
    write_module_client(disabled, TICKER, enabled=False)

    daemon.start()
    kept = [n for n in MODULES if n not in (changed, disabled)]
    wait_until(
        lambda: (
            daemon.status(changed).state == "running"
            and daemon.status(changed).pid != first[changed]
            and daemon.status(disabled).state == "disabled"
        ),
        90,
        "the changed client restarted and the disabled one stopped",
    )
    second = {n: wait_until(lambda n=n: daemon.status(n).pid, 30, f"{n} pid") for n in kept}
    # The unchanged clients were adopted: the very same processes, still ticking.
    assert second == {n: first[n] for n in kept}
    for name in kept:
        assert daemon.events(name, "adopted"), name
        count = ticks(workspace, name)
        wait_until(lambda n=name, c=count: ticks(workspace, n) > c, 30, f"{name} ticking")
    assert not pid_alive(first[changed]) and not pid_alive(first[disabled])
    for name in NOTEBOOKS:
        wait_until(lambda n=name: succeeded(daemon, n, last_run_ids[n]), 90, f"{name} runs again")

    # An adopted client is controlled like any other: stopped, then started as a new process.
    adopted = kept[0]
    daemon.control.stop(adopted)
    wait_until(lambda: daemon.status(adopted).state == "stopped", 30, "the adopted client stops")
    assert not pid_alive(first[adopted])
    stopped = daemon.events(adopted, "stopped")[-1]["message"]
    assert "exited with status 0" in stopped  # read from the runner's exit file
    daemon.control.start(adopted)
    wait_until(lambda: daemon.status(adopted).state == "running", 30, "it starts again")

    for name in NOTEBOOKS:
        runs = daemon.runs(name)
        scheduled = [r["scheduled_for"] for r in runs if r["scheduled_for"]]
        assert len(scheduled) == len(set(scheduled)), "a slot was claimed twice"
        ran = slots(workspace, name)
        assert len(ran) == len(set(ran)), f"a slot of {name} executed twice: {ran}"
        assert {r["status"] for r in runs} <= {"success", "interrupted", "running"}
    running_pids = {n: daemon.status(n).pid for n in MODULES if n != disabled}
    assert daemon.stop() == 0
    assert not any(pid and pid_alive(pid) for pid in running_pids.values())


CRASHER = """
from pathlib import Path
from quantstrip import ClientBase

class Crasher(ClientBase):
    def on_start(self):
        with open(Path(__file__).with_name("starts.txt"), "a") as f:
            f.write("start\\n")
        raise RuntimeError("broker login refused")
"""


def starts(root: Path, name: str) -> int:
    path = root / "clients" / name / "starts.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_a_crash_loop_survives_a_daemon_restart(workspace: Path, daemon: DaemonHandle) -> None:
    write_module_client("crasher", CRASHER, restart={"max_restarts": 2, "backoff_s": 0.1})
    daemon.start()
    daemon.wait_state("crasher", "crashed", 60)
    assert starts(workspace, "crasher") == 3  # first start + max_restarts
    wait_until(
        lambda: (
            daemon.query("SELECT state FROM clients WHERE name = 'crasher'")
            == [{"state": "crashed"}]
        ),
        10,
        "the crash loop mirrored",
    )

    # systemd restarts a daemon that died: the new one must not grant a fresh budget (it
    # used to start the broken client max_restarts + 1 more times before giving up again).
    daemon.kill()
    daemon.start()
    status = daemon.status("crasher")  # answered only after the registry was applied
    assert status.state == "crashed", status
    assert "broker login refused" in (status.last_error or "")
    assert status.restart_count == 2
    assert starts(workspace, "crasher") == 3
    assert len(daemon.events("crasher", "started")) == 3

    # A graceful daemon stop keeps it too; an explicit start then grants a fresh budget.
    assert daemon.stop() == 0
    daemon.start()
    assert daemon.status("crasher").state == "crashed"
    daemon.control.start("crasher")
    wait_until(lambda: starts(workspace, "crasher") == 6, 60, "a fresh budget once started")
    daemon.wait_state("crasher", "crashed", 60)
    assert starts(workspace, "crasher") == 6


@pytest.mark.slow
@pytest.mark.timeout(600)  # five daemon starts and a backlog of runs on a loaded machine
def test_each_slot_runs_exactly_once_across_five_daemon_kills(
    workspace: Path, daemon: DaemonHandle
) -> None:
    period = 4
    write_notebook_client(
        "every4",
        ["with open('slots.txt', 'a') as f:\n    f.write(scheduled_for + '\\n')"],
        schedule=f"every {period} seconds",
        missed={"policy": "run_all", "grace_s": 600},
    )
    daemon.start()
    wait_until(lambda: succeeded(daemon, "every4"), 90, "the first run")
    for _ in range(5):
        count = len(daemon.runs("every4"))
        wait_until(lambda c=count: len(daemon.runs("every4")) > c, 90, "a new slot claimed")
        daemon.kill()  # often in the middle of a run, which a new daemon adopts
        # Down for longer than a period plus the lead a slot is claimed with (PRELAUNCH_S), so
        # across at least one slot boundary nobody claimed, whatever the clock says: that slot
        # is caught up (policy run_all). Killed just after a claim and restarted a period later,
        # the next slot was still ahead of its claim: nothing was missed on a fast machine.
        time.sleep(period + PRELAUNCH_S + 0.5)
        daemon.start()

    # Two more slots run after the last start, then the daemon is stopped gracefully. With
    # run_all and a run taking about a period (a kernel start on a loaded machine), the backlog
    # of the downtimes runs one slot at a time and a run is nearly always in progress: waiting
    # for none to be running waited for a gap of milliseconds between two runs, and timed out
    # under load. A graceful stop interrupts the run in progress; that run is the latest claimed
    # slot (slots are claimed oldest first, one at a time), so it is the only one that may not
    # have succeeded, and only as interrupted by the stop, never by a kill.
    before = max(r["id"] for r in daemon.runs("every4"))
    wait_until(
        lambda: len(succeeded(daemon, "every4", before)) >= 2, 120, "two runs after the last start"
    )
    assert daemon.stop() == 0
    runs = daemon.runs("every4")
    # A daemon killed between claiming a slot and starting its run: the next one takes the
    # claim back (the row stays, without its slot, naming it) and runs the slot itself.
    taken_back = [r for r in runs if r["scheduled_for"] is None]
    assert all(r["status"] == "interrupted" and "is run again" in r["error"] for r in taken_back), (
        taken_back
    )
    runs = [r for r in runs if r["scheduled_for"] is not None]
    claimed = [r["scheduled_for"] for r in runs]
    assert len(claimed) == len(set(claimed))
    latest = max(runs, key=lambda r: r["scheduled_for"])
    unfinished = [r for r in runs if r["status"] != "success"]
    assert unfinished in ([], [latest]), [(r["id"], r["status"], r["error"]) for r in unfinished]
    assert all(r["status"] == "interrupted" and r["error"] == "daemon stopped" for r in unfinished)
    # Every slot from the first to the last ran: none skipped while the daemon was down.
    times = sorted(datetime.fromisoformat(s) for s in claimed)
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(times)}
    assert gaps == {period}, sorted(gaps)
    # ...and each executed exactly once (the one the stop interrupted at most once).
    written = slots(workspace, "every4")
    done = [r["scheduled_for"] for r in runs if r["status"] == "success"]
    cut = {r["scheduled_for"] for r in unfinished}
    assert sorted(s for s in written if s not in cut) == sorted(done)
    assert all(written.count(s) <= 1 for s in cut)
    assert daemon.events("every4", "missed_run")


# Marks its start, then holds the run until the test releases it (bounded: two minutes).
HELD_RUN = """
import pathlib, time
pathlib.Path(f"started-{run_id}").touch()
for _ in range(1200):
    if pathlib.Path("release").exists():
        break
    time.sleep(0.1)
with open("slots.txt", "a") as f:
    f.write(scheduled_for + "\\n")
"""
POLICIES = {"again_once": "run_once", "again_all": "run_all", "skipper": "skip"}


def held_runs(workspace: Path, daemon: DaemonHandle) -> dict[str, dict] | None:
    """Each client's first run, once its notebook is executing (not merely claimed)."""
    found = {}
    for name in POLICIES:
        runs = daemon.runs(name)
        if not runs or not (workspace / "clients" / name / f"started-{runs[0]['id']}").exists():
            return None
        found[name] = runs[0]
    return found


def kernels_in(folder: Path) -> list[int]:
    """Live processes working in `folder` or below (a notebook run's kernel works in its
    client's folder)."""
    found = []
    for proc in psutil.process_iter(["cwd", "status"]):
        cwd = proc.info["cwd"]
        if cwd and Path(cwd).is_relative_to(folder) and proc.info["status"] != "zombie":
            found.append(proc.pid)
    return found


def test_a_slot_interrupted_by_a_daemon_stop_follows_the_missed_policy(
    workspace: Path, daemon: DaemonHandle
) -> None:
    """A graceful stop kills the run in progress and records it as interrupted. The next daemon
    treats that slot like one missed while it was down: run_once and run_all run it again (the
    interrupted row stays, naming the slot), skip records it as missed; no slot runs twice."""
    for name, policy in POLICIES.items():
        write_notebook_client(
            name,
            [HELD_RUN],
            schedule="every 30 seconds",
            time_limit_s=170,
            missed={"policy": policy, "grace_s": 600},
        )
    daemon.start()
    first = wait_until(lambda: held_runs(workspace, daemon), 120, "three slow runs executing")
    assert daemon.stop() == 0
    # The stop killed each run with its kernel (in a session of its own): none executes on.
    assert kernels_in(workspace / "clients") == []
    for name, run in first.items():
        [row] = [r for r in daemon.runs(name) if r["id"] == run["id"]]
        assert (row["status"], row["error"]) == ("interrupted", "daemon stopped"), row

    daemon.start()
    reran: dict[str, str] = {}  # client -> the slot run for its interrupted one
    for name in ("again_once", "again_all"):
        slot, run_id = first[name]["scheduled_for"], first[name]["id"]
        old = wait_until(
            lambda n=name, i=run_id: next(
                r for r in daemon.runs(n) if r["id"] == i and r["error"] != "daemon stopped"
            ),
            60,
            f"{name}: its interrupted run settled",
        )
        assert old["status"] == "interrupted"
        # run_once runs the latest slot: one that passed while the run was held replaces it.
        later = re.fullmatch(
            rf"daemon stopped; slot {slot} not run again: the later slot (.+) runs instead "
            r"\(policy run_once\)",
            old["error"],
        )
        if name == "again_once" and later:
            assert old["scheduled_for"] == slot
            reran[name] = later.group(1)
        else:
            assert old["error"] == (
                f"daemon stopped; slot {slot} is run again (policy {POLICIES[name]})"
            )
            assert old["scheduled_for"] is None
            reran[name] = slot
        rerun = wait_until(
            lambda n=name, s=reran[name]: next(
                (r for r in daemon.runs(n) if r["scheduled_for"] == s), None
            ),
            60,
            f"{name}: slot {reran[name]} claimed",
        )
        assert rerun["trigger"] == "missed" and rerun["id"] != run_id
    skipped = first["skipper"]
    old = next(r for r in daemon.runs("skipper") if r["id"] == skipped["id"])
    assert old["status"] == "interrupted" and old["scheduled_for"] == skipped["scheduled_for"]
    assert old["error"] == (
        f"daemon stopped; slot {skipped['scheduled_for']} not run again (policy skip)"
    )
    assert any(
        f"run {skipped['id']} was interrupted" in e["message"]
        for e in daemon.events("skipper", "missed_run")
    )
    # Released: the reruns finish, each slot written once; a third start reruns nothing.
    for name in POLICIES:
        (workspace / "clients" / name / "release").touch()
    for name, slot in reran.items():
        wait_until(lambda n=name, s=slot: s in slots(workspace, n), 90, f"{name}'s rerun")
    assert daemon.stop() == 0
    daemon.start()
    for name in POLICIES:
        written = slots(workspace, name)
        assert len(written) == len(set(written)), (name, written)
        slot = first[name]["scheduled_for"]
        assert written.count(slot) == (1 if reran.get(name) == slot else 0)
        assert len([r for r in daemon.runs(name) if r["scheduled_for"] == slot]) == 1


def test_a_slot_whose_run_died_with_a_killed_daemon_runs_again(
    workspace: Path, daemon: DaemonHandle
) -> None:
    """The daemon and its run die together (a reboot, the OOM killer): the next daemon closes the
    run as interrupted and, the client running missed slots, runs its slot again."""
    write_notebook_client(
        "again_all",
        [HELD_RUN],
        schedule="every 30 seconds",
        time_limit_s=170,
        missed={"policy": "run_all", "grace_s": 600},
    )
    daemon.start()
    folder = workspace / "clients" / "again_all"
    run = wait_until(
        lambda: next(
            (r for r in daemon.runs("again_all") if (folder / f"started-{r['id']}").exists()), None
        ),
        120,
        "a held run executing",
    )
    daemon.kill()
    os.killpg(run["pid"], signal.SIGKILL)
    wait_until(lambda: not pid_alive(run["pid"]), 30, "the run to die with the daemon")
    daemon.start()
    slot = run["scheduled_for"]
    rerun = wait_until(
        lambda: next(
            (
                r
                for r in daemon.runs("again_all")
                if r["scheduled_for"] == slot and r["id"] != run["id"]
            ),
            None,
        ),
        60,
        f"slot {slot} claimed again",
    )
    assert rerun["trigger"] == "missed"
    old = next(r for r in daemon.runs("again_all") if r["id"] == run["id"])
    assert old["status"] == "interrupted" and old["scheduled_for"] is None
    assert old["error"] == (
        f"the daemon stopped during this run; slot {slot} is run again (policy run_all)"
    )
    (folder / "release").touch()
    wait_until(lambda: slot in slots(workspace, "again_all"), 90, "the rerun")
    assert slots(workspace, "again_all").count(slot) == 1
