"""What the monitor says about a client, decided in one place from what the daemon reports,
the client's last job and its last notebook run.

A client is **failing** (red) when it crashed, is invalid or restarting after a crash, when its
last job raised (a module client keeps running after a failed job: that is not "running, all
fine"), or when its last notebook run failed or timed out. It is **ok** (green) when it runs or
waits for its next run with nothing failing, **idle** (grey) when stopped or paused, and
**unknown** when the daemon is down (the last recorded state is shown, labelled as such).

Which lifecycle actions apply follows from the same facts, so a button is enabled only where
its action can do something.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from quantstrip import clock
from quantstrip.daemon.control import ClientStatus
from quantstrip.daemon.states import ClientState, RunStatus
from quantstrip.dashboard.display import countdown, format_age, format_time


class Health(StrEnum):
    OK = "ok"
    FAILING = "failing"
    IDLE = "idle"
    UNKNOWN = "unknown"


COLOURS = {
    Health.OK: "#0a6b0a",
    Health.FAILING: "#b00020",
    Health.IDLE: "#666666",
    Health.UNKNOWN: "#a86a00",
}
ACTIONS = ("start", "stop", "restart", "run_now", "enable", "disable")
FAILED_RUNS = (RunStatus.FAILED, RunStatus.TIMEOUT)


@dataclass
class Assessment:
    health: Health
    headline: str  # one line: what is going on
    error: str = ""  # the last error's message
    error_time: str = ""  # when, in the operator's zone
    details: list[str] = field(default_factory=list)  # started, heartbeat, next run...
    actions: frozenset[str] = frozenset()


def _epoch_text(epoch: float) -> str:
    return format_time(datetime.fromtimestamp(epoch, UTC))


def assess(
    status: ClientStatus,
    *,
    daemon_up: bool,
    last_run: dict[str, Any] | None = None,
    last_error_event: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Assessment:
    now = now or clock.now()
    state = status.state
    error = status.last_error or ""
    error_time = format_time(last_error_event["created_at"]) if last_error_event else ""
    details = _details(status, now)
    if not daemon_up:
        return Assessment(
            Health.UNKNOWN,
            f"daemon down: last recorded state {state}",
            error,
            error_time,
            details,
        )
    actions = available_actions(status, last_run)
    if state in (ClientState.CRASHED, ClientState.INVALID):
        return Assessment(Health.FAILING, state, error, error_time, details, actions)
    if state == ClientState.RESTARTING:
        headline = f"restarting after a failure ({status.restart_count} restarts)"
        return Assessment(Health.FAILING, headline, error, error_time, details, actions)
    if state == ClientState.DISABLED:
        return Assessment(Health.IDLE, "paused (disabled)", error, error_time, details, actions)
    if state == ClientState.STOPPED:
        return Assessment(Health.IDLE, "stopped", error, error_time, details, actions)
    job = status.last_job
    if status.kind == "module" and job and not job[1]:
        message = last_error_event["message"] if last_error_event else f"job {job[0]} failed"
        headline = f"{state}, but its last job ({job[0]}) failed at {_epoch_text(job[2])}"
        return Assessment(Health.FAILING, headline, message, _epoch_text(job[2]), details, actions)
    if status.kind == "notebook" and last_run and last_run.get("status") in FAILED_RUNS:
        ended = format_time(last_run.get("ended_at") or last_run.get("started_at"))
        headline = f"{state}, but its last run {last_run['status']} at {ended}"
        message = str(last_run.get("error") or error or last_run["status"])
        return Assessment(Health.FAILING, headline, message, ended, details, actions)
    if state == ClientState.RUNNING and status.kind == "module" and not status.last_heartbeat:
        return Assessment(Health.OK, "starting (no heartbeat yet)", "", "", details, actions)
    return Assessment(Health.OK, state, "", "", details, actions)


def available_actions(status: ClientStatus, last_run: dict[str, Any] | None = None) -> frozenset:
    """The lifecycle actions that apply to the client as it is now (daemon up)."""
    state = status.state
    if state == ClientState.INVALID:
        return frozenset()
    if not status.enabled or state == ClientState.DISABLED:
        return frozenset({"enable"})
    actions = {"disable"}
    if status.kind == "module":
        if state in (ClientState.RUNNING, ClientState.RESTARTING):
            actions |= {"stop", "restart"}
            if state == ClientState.RUNNING:
                actions.add("run_now")
        elif state in (ClientState.STOPPED, ClientState.CRASHED):
            actions |= {"start", "restart"} if state == ClientState.CRASHED else {"start"}
    else:
        if state == ClientState.SCHEDULED:
            actions |= {"stop", "run_now"}
        elif state == ClientState.RUNNING:
            actions.add("stop")
        elif state in (ClientState.STOPPED, ClientState.CRASHED):
            actions.add("start")
    return frozenset(actions)


def _details(status: ClientStatus, now: datetime) -> list[str]:
    out = []
    if status.started_at:
        out.append(f"started {format_time(status.started_at)}")
    if status.heartbeat_age_s is not None:
        out.append(f"heartbeat {format_age(status.heartbeat_age_s)} ago")
    if status.next_run:
        out.append(f"next run {format_time(status.next_run)} ({countdown(status.next_run, now)})")
    if status.pid:
        out.append(f"pid {status.pid}")
    out.append(f"restarts {status.restart_count}")
    if status.missed_policy:  # what happens to slots missed while the daemon was down
        out.append(f"missed runs: {status.missed_policy}")
    return out
