"""Module clients under a real daemon: ticking, crashing, hanging, controlled through the API."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.daemon import (
    TICKER,
    DaemonHandle,
    pid_alive,
    ticks,
    wait_until,
    write_client_toml,
    write_module_client,
)

from quantstrip.client import heartbeat
from quantstrip.daemon.control import ControlClient, ControlError

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


def test_module_client_fires_every_second_and_stops_gracefully(
    workspace: Path, daemon: DaemonHandle
) -> None:
    write_module_client("ticker", TICKER)
    daemon.start()
    status = daemon.wait_heartbeat("ticker")
    assert status.kind == "module" and status.enabled and status.pid
    assert status.display_name == "Ticker"  # as the class set it
    wait_until(lambda: ticks(workspace, "ticker") >= 3, 20, "three ticks")
    status = daemon.status("ticker")
    assert status.next_run is not None
    assert status.heartbeat_age_s is not None and status.heartbeat_age_s < 3

    daemon.control.stop("ticker")
    daemon.wait_state("ticker", "stopped")
    assert not pid_alive(status.pid)
    assert (workspace / "clients/ticker/stopped.txt").read_text() == "clean stop"
    count = ticks(workspace, "ticker")
    daemon.control.start("ticker")
    wait_until(lambda: ticks(workspace, "ticker") > count, 20, "ticks after start")

    row = daemon.query("SELECT * FROM clients WHERE name = 'ticker'")[0]
    assert row["state"] == "running" and row["pid"] == daemon.status("ticker").pid
    kinds = [e["event_type"] for e in daemon.events("ticker")]
    assert kinds[:4] == ["started", "stop_requested", "stopped", "started"]
    assert daemon.stop() == 0
    # After a graceful daemon stop the mirror says stopped, and the CLI's fallback shows it.
    fallback = {s.name: s for s in ControlClient(daemon.control.path).list_clients()}
    assert fallback["ticker"].state == "stopped" and not fallback["ticker"].daemon_running


def test_crashing_client_is_restarted_then_left_crashed_with_its_traceback(
    workspace: Path, daemon: DaemonHandle
) -> None:
    write_module_client(
        "crasher",
        """
        from pathlib import Path
        from quantstrip import ClientBase

        class Crasher(ClientBase):
            def on_start(self):
                with open(Path(__file__).with_name("starts.txt"), "a") as f:
                    f.write("start\\n")
                raise RuntimeError("broker login refused")
        """,
        restart={"max_restarts": 2, "backoff_s": 0.1},
    )
    write_module_client("ticker", TICKER)
    daemon.start()
    status = daemon.wait_state("crasher", "crashed", 60)
    starts = (workspace / "clients/crasher/starts.txt").read_text().splitlines()
    assert len(starts) == 3  # first start + max_restarts
    assert status.restart_count == 2
    assert "RuntimeError: broker login refused" in (status.last_error or "")
    assert "on_start" in (status.last_error_traceback or "")
    crashes = daemon.events("crasher", "crashed")
    assert len(crashes) == 3 and "broker login refused" in crashes[0]["traceback"]
    assert len(daemon.events("crasher", "crash_loop")) == 1
    # The crash loop never disturbed the other client.
    assert daemon.status("ticker").state == "running"
    # Once fixed, an explicit start tries again from a clean slate.
    daemon.control.start("crasher")
    wait_until(
        lambda: len((workspace / "clients/crasher/starts.txt").read_text().splitlines()) == 4,
        30,
        "a fresh start",
    )


def test_client_killed_by_a_signal_is_restarted_with_backoff(
    workspace: Path, daemon: DaemonHandle
) -> None:
    write_module_client("ticker", TICKER, restart={"policy": "always"})
    daemon.start()
    first = daemon.wait_heartbeat("ticker")
    import os
    import signal

    os.kill(first.pid, signal.SIGKILL)
    second = wait_until(
        lambda: (s := daemon.status("ticker")).state == "running" and s.pid != first.pid and s,
        30,
        "the restarted client",
    )
    assert second.restart_count == 1
    assert "killed by signal 9" in (second.last_error or "")
    assert daemon.events("ticker", "restart_scheduled")


def test_stuck_clients_are_stopped_at_their_limits_and_restarted(
    workspace: Path, daemon: DaemonHandle
) -> None:
    # A job blocked forever is stopped at its 1 s time limit (reported as such)...
    write_module_client(
        "stuck_job",
        """
        import time
        from quantstrip import ClientBase

        class StuckJob(ClientBase):
            def __init__(self):
                super().__init__()
                self.scheduler.every(1).seconds.do(self.job)

            def job(self):
                time.sleep(3600)
        """,
        time_limit_s=1.0,
    )
    # ...a main loop that never gets going (on_start blocks, ignoring SIGTERM's graceful path:
    # the daemon escalates to SIGKILL after stop_timeout_s) is hung: it never beats.
    write_module_client(
        "stuck_start",
        """
        import time
        from quantstrip import ClientBase

        class StuckStart(ClientBase):
            def on_start(self):
                time.sleep(3600)
        """,
    )
    # ...and a process frozen after it has beaten (SIGSTOP: nothing in it runs) is hung too.
    write_module_client(
        "frozen",
        """
        import os, signal
        from quantstrip import ClientBase

        class Frozen(ClientBase):
            def __init__(self):
                super().__init__()
                self.scheduler.every(2).seconds.do(self.freeze)

            def freeze(self):
                os.kill(os.getpid(), signal.SIGSTOP)
        """,
    )
    daemon.start()
    first_job = daemon.wait_heartbeat("stuck_job")
    first_frozen = daemon.wait_heartbeat("frozen")
    first_start_pid = wait_until(lambda: daemon.status("stuck_start").pid, 20, "stuck_start pid")
    for name, old_pid, event in (
        ("stuck_job", first_job.pid, "job_time_limit"),
        ("stuck_start", first_start_pid, "hung"),
        ("frozen", first_frozen.pid, "hung"),
    ):
        wait_until(lambda n=name, e=event: daemon.events(n, e), 40, f"{name}: {event}")
        wait_until(lambda p=old_pid: not pid_alive(p), 20, f"{name}'s old process gone")
        restarted = wait_until(
            lambda n=name, p=old_pid: (s := daemon.status(n)).pid not in (None, p) and s,
            30,
            f"{name} restarted",
        )
        assert restarted.restart_count >= 1
    assert "time limit of 1 s" in daemon.events("stuck_job", "job_time_limit")[0]["message"]
    # Before its first beat a client is judged by startup_timeout_s.
    message = daemon.events("stuck_start", "hung")[0]["message"]
    assert "no heartbeat" in message and "startup timeout 10 s" in message, message
    # After it, by timeout_s.
    message = daemon.events("frozen", "hung")[0]["message"]
    assert "no heartbeat" in message and "heartbeat timeout 3 s" in message, message


def test_invalid_client_is_shown_while_the_others_run_and_registry_changes_apply(
    workspace: Path, daemon: DaemonHandle
) -> None:
    write_client_toml("broken", kind="module", entry="broken.py", colour="blue")
    write_module_client("ticker", TICKER)
    daemon.start()
    broken = daemon.wait_state("broken", "invalid")
    assert "colour" in (broken.last_error or "") and not broken.enabled
    daemon.wait_heartbeat("ticker")
    with pytest.raises(ControlError, match="invalid"):
        daemon.control.start("broken")
    with pytest.raises(ControlError, match="no client"):
        daemon.control.start("ghost")

    # Disable persists in client.toml and stops the process; enable brings it back.
    pid = daemon.status("ticker").pid
    daemon.control.disable("ticker")
    daemon.wait_state("ticker", "disabled")
    assert "enabled = false" in (workspace / "clients/ticker/client.toml").read_text()
    assert not pid_alive(pid)
    daemon.control.enable("ticker")
    daemon.wait_heartbeat("ticker")

    # Fixing the file on disk is picked up without restarting the daemon.
    (workspace / "clients/broken/broken.py").write_text(TICKER)
    write_module_client("broken", TICKER)
    daemon.wait_heartbeat("broken")
    run_now = daemon.control.run_now("broken")
    assert run_now["name"] == "broken"


def test_removing_a_client_folder_stops_it(workspace: Path, daemon: DaemonHandle) -> None:
    import shutil

    write_module_client("ticker", TICKER)
    daemon.start()
    pid = daemon.wait_heartbeat("ticker").pid
    shutil.rmtree(workspace / "clients/ticker")
    wait_until(lambda: "ticker" not in daemon.statuses(), 30, "ticker to be forgotten")
    wait_until(lambda: not pid_alive(pid), 10, "its process to end")
    assert daemon.query("SELECT state FROM clients WHERE name = 'ticker'") == [{"state": "removed"}]


def test_run_now_fires_a_module_clients_jobs_immediately(
    workspace: Path, daemon: DaemonHandle
) -> None:
    write_module_client(
        "nightly",
        """
        from pathlib import Path
        from quantstrip import ClientBase

        class Nightly(ClientBase):
            def __init__(self):
                super().__init__()
                self.scheduler.every().monday.at("03:00", tz="Asia/Tokyo").do(self.job)

            def job(self):
                Path(__file__).with_name("ran.txt").write_text(self.parameters["greeting"])
        """,
        parameters={"greeting": "hello"},
    )
    daemon.start()
    status = daemon.wait_heartbeat("nightly")
    assert status.next_run is not None and status.next_run.endswith(":00:00.000000")
    daemon.control.run_now("nightly")
    ran = workspace / "clients/nightly/ran.txt"
    wait_until(ran.exists, 20, "the job to run now")
    assert ran.read_text() == "hello"
    assert daemon.status("nightly").next_run == status.next_run  # its schedule is unchanged


def test_a_long_job_is_reported_once_and_left_running(
    workspace: Path, daemon: DaemonHandle
) -> None:
    write_module_client(
        "slow",
        """
        import time
        from quantstrip import ClientBase

        class Slow(ClientBase):
            def __init__(self):
                super().__init__()
                self.runs = 0
                self.scheduler.every(1).seconds.do(self.rebuild_model)

            def rebuild_model(self):
                self.runs += 1
                if self.runs == 1:
                    time.sleep(5)  # far over job_warn_s, but no time_limit_s: not a hang
        """,
        job_warn_s=1.5,
    )
    daemon.start()
    pid = daemon.wait_heartbeat("slow").pid
    event = wait_until(lambda: daemon.events("slow", "long_job"), 30, "the long-job report")[0]
    assert "job rebuild_model has been running for" in event["message"]

    # Reported once for that run, the job finishes, the client is never restarted.
    def jobs_run() -> int:
        beat = heartbeat.read_beat(heartbeat.heartbeat_path("slow"))
        return beat.jobs_run if beat else 0

    wait_until(lambda: jobs_run() >= 3, 30, "later runs")
    assert len(daemon.events("slow", "long_job")) == 1
    status = daemon.status("slow")
    assert status.pid == pid and status.state == "running" and status.restart_count == 0


def test_a_job_over_its_time_limit_is_stopped_at_the_limit_not_at_the_heartbeat_timeout(
    workspace: Path, daemon: DaemonHandle
) -> None:
    write_module_client(
        "overrun",
        """
        import time
        from pathlib import Path
        from quantstrip import ClientBase

        class Overrun(ClientBase):
            def __init__(self):
                super().__init__()
                self.scheduler.every(1).seconds.do(self.fetch)

            def fetch(self):
                with open(Path(__file__).with_name("fetches.txt"), "a") as f:
                    f.write("fetch\\n")
                time.sleep(60)  # a dead connection
        """,
        time_limit_s=4.0,
        # Far longer than the limit: the heartbeat timeout must not be what stops the job.
        heartbeat={"interval_s": 2.0, "timeout_s": 120.0, "startup_timeout_s": 120.0},
    )
    daemon.start()
    first = daemon.wait_heartbeat("overrun")
    event = wait_until(
        lambda: daemon.events("overrun", "job_time_limit"), 40, "the time-limit event"
    )[0]
    assert "job fetch" in event["message"] and "time limit of 4 s" in event["message"]
    ran = float(event["message"].split("ran for ")[1].split(" s")[0])
    assert 4.0 <= ran < 20.0, event["message"]  # at the limit (one tick late at most)
    wait_until(lambda: not pid_alive(first.pid), 20, "the overrunning process to be stopped")
    assert not daemon.events("overrun", "hung")
    # Stopped for a failure: the restart policy starts it again, and the operator sees why.
    restarted = wait_until(
        lambda: (s := daemon.status("overrun")).pid not in (None, first.pid) and s,
        30,
        "the client restarted",
    )
    assert "time limit" in (restarted.last_error or "")
    assert daemon.events("overrun", "restart_scheduled")
