"""What the monitor says about a client: failing is red with its error whatever the process
state says, buttons only where their action applies, times in the operator's zone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from quantstrip import settings
from quantstrip.daemon.control import ClientStatus
from quantstrip.dashboard.display import countdown, format_time
from quantstrip.dashboard.health import Health, assess

NOW = datetime(2031, 3, 4, 15, 0, tzinfo=UTC)


def module(**kw: object) -> ClientStatus:
    base = {
        "name": "m",
        "kind": "module",
        "state": "running",
        "enabled": True,
        "pid": 42,
        "started_at": "2031-03-04 14:00:00.123456",
        "last_heartbeat": "x",
        "heartbeat_age_s": 1.2,
    }
    return ClientStatus(**{**base, **kw})  # type: ignore[arg-type]


def test_a_running_module_whose_last_job_failed_is_failing_not_green() -> None:
    failed_at = datetime(2031, 3, 4, 14, 59, tzinfo=UTC).timestamp()
    status = module(last_job=["job", False, failed_at], restart_count=2)
    event = {"created_at": "2031-03-04 14:59:00.000000", "message": "job job failed: ValueError"}
    view = assess(status, daemon_up=True, last_error_event=event, now=NOW)
    assert view.health is Health.FAILING
    assert "last job (job) failed at 2031-03-04 14:59:00" in view.headline
    assert view.error == "job job failed: ValueError"
    assert "restarts 2" in view.details
    # The next job succeeded: green again.
    ok = module(last_job=["job", True, failed_at + 60])
    assert assess(ok, daemon_up=True, last_error_event=event, now=NOW).health is Health.OK


def test_crashed_restarting_and_failed_runs_are_failing() -> None:
    crashed = module(state="crashed", pid=None, last_error="exit code 1", restart_count=5)
    view = assess(crashed, daemon_up=True, now=NOW)
    assert view.health is Health.FAILING and view.error == "exit code 1"
    assert view.actions == {"start", "restart", "disable"}
    assert assess(module(state="restarting"), daemon_up=True, now=NOW).health is Health.FAILING
    notebook = ClientStatus("n", "notebook", "scheduled", True, next_run="2031-03-04 16:00:00.0")
    run = {
        "status": "failed",
        "error": "ZeroDivisionError",
        "started_at": "2031-03-04 14:00:00.0",
        "ended_at": "2031-03-04 14:00:05.0",
    }
    view = assess(notebook, daemon_up=True, last_run=run, now=NOW)
    assert view.health is Health.FAILING and view.error == "ZeroDivisionError"
    assert "next run 2031-03-04 16:00:00" in " ".join(view.details)
    assert "(in 60 min)" in " ".join(view.details)
    run_ok = {**run, "status": "success"}
    assert assess(notebook, daemon_up=True, last_run=run_ok, now=NOW).health is Health.OK


@pytest.mark.parametrize(
    ("status", "actions"),
    [
        (module(), {"stop", "restart", "run_now", "disable"}),
        (module(state="stopped", pid=None), {"start", "disable"}),
        (module(state="disabled", enabled=False, pid=None), {"enable"}),
        (module(state="invalid", pid=None), set()),
        (ClientStatus("n", "notebook", "scheduled", True), {"stop", "run_now", "disable"}),
        (ClientStatus("n", "notebook", "running", True), {"stop", "disable"}),
        (ClientStatus("n", "notebook", "stopped", True), {"start", "disable"}),
    ],
)
def test_buttons_only_where_the_action_applies(status: ClientStatus, actions: set[str]) -> None:
    assert assess(status, daemon_up=True, now=NOW).actions == actions


def test_with_the_daemon_down_nothing_can_be_pressed_and_the_state_is_labelled() -> None:
    view = assess(module(), daemon_up=False, now=NOW)
    assert view.health is Health.UNKNOWN and view.actions == frozenset()
    assert view.headline == "daemon down: last recorded state running"


def test_times_are_in_the_operators_zone_labelled_without_microseconds(
    workspace: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    settings._reset_for_tests()
    settings.set("dashboard.timezone", "Europe/Paris")
    assert format_time("2031-03-04 14:00:00.123456") == "2031-03-04 15:00:00 CET"
    assert countdown("2031-03-04 18:05:00.000000", NOW) == "in 3 h 5 min"
    settings._reset_for_tests()
