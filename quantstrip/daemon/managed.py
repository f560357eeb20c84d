"""`Managed`: the runtime state of one client, owned by the daemon's main loop.

Only the main loop reads or writes it (the control API's thread queues commands for the loop),
so there is no locking. What must outlive the daemon (state, restart budget, runs, events) is
written to the database by `mirror` and `restart_policy`; everything here can be rebuilt.
"""

from __future__ import annotations

import subprocess
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from quantstrip.daemon.notebooks import NotebookRun
from quantstrip.daemon.processes import AdoptedProcess
from quantstrip.daemon.registry import ClientConfig, InvalidClient
from quantstrip.daemon.states import ClientState, StopReason


@dataclass
class Managed:
    name: str
    config: ClientConfig | InvalidClient
    signature: tuple[Any, ...]
    state: ClientState = ClientState.STOPPED
    # module clients
    proc: subprocess.Popen[bytes] | AdoptedProcess | None = None
    started_at: str | None = None
    started_epoch: float | None = None
    stop_reason: StopReason | None = None
    stop_deadline: float | None = None
    killed: bool = False
    restart_times: list[float] = field(default_factory=list)  # epoch; kept in the database
    restart_count: int = 0
    next_restart_at: float | None = None
    last_heartbeat: float | None = None
    next_run: str | None = None
    reported_name: str | None = None  # display_name the running client reported
    last_job: list[Any] | None = None  # [name, succeeded, epoch end] from the last beat
    warned_jobs: set[tuple[int, str, float]] = field(default_factory=set)  # long jobs reported
    # notebook clients
    trigger: Any = None
    next_fire: datetime | None = None
    run: NotebookRun | None = None
    missed_slots: deque[datetime] = field(default_factory=deque)  # catch-up still to run
    # both
    last_error: str | None = None
    last_error_traceback: str | None = None
    user_stopped: bool = False
    pending_reload: bool = False
    mirrored: dict[str, Any] | None = None

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def valid(self) -> bool:
        return isinstance(self.config, ClientConfig)

    @property
    def enabled(self) -> bool:
        return isinstance(self.config, ClientConfig) and self.config.enabled

    @property
    def cfg(self) -> ClientConfig:
        """The valid config (callers have checked `valid`)."""
        assert isinstance(self.config, ClientConfig), f"client {self.name} is invalid"
        return self.config
