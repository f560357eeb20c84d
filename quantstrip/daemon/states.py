"""Every state, status and event name the daemon writes, defined once.

Like jupyter-scheduler's `Status`, these are `str` enums: they compare equal to the text stored
in the database and sent over the control API (`ClientState.RUNNING == "running"`), so readers
(the monitor, the CLI, the EOD summary) and writers share one spelling and a typo is an
AttributeError at import, not a query that silently matches nothing.
"""

from __future__ import annotations

from enum import StrEnum


class ClientKind(StrEnum):
    """How a client runs (`client.toml` kind)."""

    MODULE = "module"  # a ClientBase subclass in its own long-running process
    NOTEBOOK = "notebook"  # a notebook executed by papermill on a schedule


class ClientState(StrEnum):
    """A client as the monitor shows it (`clients.state`)."""

    RUNNING = "running"  # module: its process is up; notebook: a run is in progress
    SCHEDULED = "scheduled"  # notebook: waiting for its next slot
    STOPPING = "stopping"  # SIGTERM sent, waiting for the process to exit
    RESTARTING = "restarting"  # crashed or hung; restarts after its backoff
    STOPPED = "stopped"
    CRASHED = "crashed"  # gave up: crash loop, or a failure with a policy that does not restart
    DISABLED = "disabled"
    INVALID = "invalid"  # client.toml could not be used
    REMOVED = "removed"  # its folder is gone


class RunStatus(StrEnum):
    """A notebook run (`client_runs.status`)."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"  # killed by the daemon at the client's time_limit_s
    INTERRUPTED = "interrupted"  # stopped by the operator or by a daemon stop


class RunTrigger(StrEnum):
    """Why a notebook run started (`client_runs.trigger`)."""

    SCHEDULE = "schedule"
    MANUAL = "manual"
    MISSED = "missed"  # catch-up of a slot that passed while the daemon was down


class MissedPolicy(StrEnum):
    """What a notebook client does with slots that passed while the daemon was down."""

    SKIP = "skip"
    RUN_ONCE = "run_once"  # the latest missed slot (within grace_s) runs once
    RUN_ALL = "run_all"  # every missed slot (within grace_s) runs, oldest first, one at a time


class StopReason(StrEnum):
    """Why the daemon is stopping a module client's process."""

    STOP = "stop"
    SHUTDOWN = "shutdown"
    RELOAD = "reload"
    RESTART = "restart"
    DISABLE = "disable"
    REMOVED = "removed"
    HUNG = "hung"
    TIME_LIMIT = "time_limit"

    @property
    def requested(self) -> bool:
        """Asked for (by the operator, the registry or a daemon stop), not a failure."""
        return self not in (StopReason.HUNG, StopReason.TIME_LIMIT)


class EventType(StrEnum):
    """`client_events.event_type`: every lifecycle event a client can have."""

    STARTED = "started"
    ADOPTED = "adopted"
    STOPPED = "stopped"
    EXITED = "exited"
    STOP_REQUESTED = "stop_requested"
    CRASHED = "crashed"
    HUNG = "hung"
    JOB_ERROR = "job_error"
    JOB_TIME_LIMIT = "job_time_limit"
    LONG_JOB = "long_job"
    CRASH_LOOP = "crash_loop"
    RESTART_SCHEDULED = "restart_scheduled"
    RELOADED = "reloaded"
    REMOVED = "removed"
    INVALID = "invalid"
    ENABLED = "enabled"
    DISABLED = "disabled"
    RUN_NOW = "run_now"
    RUN_STARTED = "run_started"
    RUN_SUCCEEDED = "run_succeeded"
    RUN_FAILED = "run_failed"
    RUN_TIMEOUT = "run_timeout"
    RUN_INTERRUPTED = "run_interrupted"
    RUN_SKIPPED = "run_skipped"
    MISSED_RUN = "missed_run"
    HELD_HALTED = "held_halted"  # not started by a new daemon: the operator's halt stands

    @classmethod
    def for_run(cls, status: RunStatus | str) -> EventType:
        """The event recording a run that ended with `status`."""
        return cls(f"run_{'succeeded' if status == RunStatus.SUCCESS else status}")


# What the end-of-day summary lists as the day's errors.
ERROR_EVENTS: frozenset[EventType] = frozenset(
    {
        EventType.CRASHED,
        EventType.HUNG,
        EventType.JOB_ERROR,
        EventType.JOB_TIME_LIMIT,
        EventType.CRASH_LOOP,
        EventType.RUN_FAILED,
        EventType.RUN_TIMEOUT,
    }
)
# Runs the end-of-day summary lists as failed.
FAILED_RUNS: frozenset[RunStatus] = frozenset({RunStatus.FAILED, RunStatus.TIMEOUT})
