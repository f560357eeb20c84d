"""`ClientBase`: what a strategy or service subclasses to become a supervised client.

```python
class MyStrategy(ClientBase):
    def __init__(self):
        super().__init__()
        self.scheduler.every().day.at("16:00", tz="America/New_York").do(self.job)
```

The runner (`quantstrip.client.runner`) instantiates the class in its own process and calls
`run()`. Every job is wrapped so that an exception is logged, recorded as a client event, alerted
by e-mail and passed to `on_error`, and the client keeps running: one bad evening must not stop
tomorrow's run. The wrapper also tracks how long each job has been running, so a job that blocks
forever stops the heartbeat and the daemon restarts the client.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from quantstrip import clock
from quantstrip.client import services
from quantstrip.client.schedule import Scheduler
from quantstrip.daemon.states import EventType


class ClientBase:
    """Base class of module clients. Override `on_start`, `on_stop`, `on_error` as needed."""

    def __init__(self, name: str | None = None, tz: str | None = None) -> None:
        self.name: str = name or os.environ.get("QUANTSTRIP_CLIENT") or type(self).__name__
        self.display_name: str = self.name
        self.mode: str = os.environ.get("QUANTSTRIP_MODE", "simulation")
        if self.mode == "simulation":
            # Simulation never pollutes the production record: db_handler writes to its own file.
            from quantstrip import db_handler
            from quantstrip.paths import workspace

            db_handler.use(workspace().simulation_database)
        # [parameters] of client.toml, passed by the daemon.
        self.parameters: dict[str, Any] = json.loads(
            os.environ.get("QUANTSTRIP_CLIENT_PARAMETERS") or "{}"
        )
        self.log = services.get_logger(self.name)
        self.scheduler = Scheduler(tz=tz or os.environ.get("QUANTSTRIP_CLIENT_TZ"), wrap=self._wrap)
        # client.toml `recipients` for this client's alerts (empty: the settings decide).
        self.recipients: list[str] = json.loads(
            os.environ.get("QUANTSTRIP_CLIENT_RECIPIENTS") or "[]"
        )
        timeout = os.environ.get("QUANTSTRIP_JOB_TIMEOUT_S")
        # A job running longer than this stops the heartbeat (None: jobs may run forever).
        self.job_timeout_s: float | None = float(timeout) if timeout else None
        self.jobs_run = 0
        self.jobs_failed = 0
        # The last job to finish: (name, succeeded, epoch end); the monitor shows a client whose
        # last job failed as failing, not as a green "running".
        self.last_job: tuple[str, bool, float] | None = None
        # thread id -> (job name, monotonic start, epoch start) of every job running now
        self._running: dict[int, tuple[str, float, float]] = {}
        self._running_lock = threading.Lock()
        self._stop = threading.Event()
        self._events: Any = None
        self._heartbeat: Callable[[ClientBase], None] | None = None

    # ---- hooks ---------------------------------------------------------------------------
    def on_start(self) -> None:
        """Called once before the scheduler starts (connect to brokers, warm caches...)."""

    def on_stop(self) -> None:
        """Called once on a graceful stop (SIGTERM from the daemon), before the process exits."""

    def on_error(self, exc: BaseException) -> None:
        """Called after a job raised (it has already been logged, recorded and alerted)."""

    # ---- job wrapping --------------------------------------------------------------------
    def _wrap(self, func: Callable[..., Any], job_name: str) -> Callable[..., Any]:
        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            key = threading.get_ident()
            with self._running_lock:
                self._running[key] = (job_name, clock.monotonic(), clock.epoch())
            self._beat_now()  # the daemon times the job from its start, not from the next beat
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                self.jobs_failed += 1
                self.last_job = (job_name, False, clock.epoch())
                self._job_failed(job_name, exc, traceback.format_exc())
                return None
            else:
                self.last_job = (job_name, True, clock.epoch())
                return result
            finally:
                self.jobs_run += 1
                with self._running_lock:
                    self._running.pop(key, None)
                self._beat_now()  # a job done in time must not look still running

        return guarded

    def _beat_now(self) -> None:
        """Tell the daemon at once that a job started or ended (it enforces time_limit_s from
        the job's start time in the beat); never while a job is over its limit."""
        beat = self._heartbeat
        if beat is None or self.overdue_jobs():
            return
        try:
            beat(self)
        except Exception as exc:  # a beat is best effort: the main loop beats again
            self.log.warning("heartbeat failed: %s", exc)

    def _job_failed(self, job_name: str, exc: Exception, tb: str) -> None:
        message = f"job {job_name} failed: {type(exc).__name__}: {exc}"
        self.log.error("%s\n%s", message, tb)
        try:
            self._events_db().record_client_event(self.name, EventType.JOB_ERROR, message, tb)
        except Exception as db_exc:
            self.log.warning("could not record job error: %s", db_exc)
        services.send_error_alert(self.name, message, tb, to=self.recipients or None)
        try:
            self.on_error(exc)
        except Exception:
            self.log.exception("on_error raised")

    def _events_db(self) -> Any:
        """The workspace database, where the monitor reads client events. Deliberately not
        `db_handler`, which a simulation-mode client may point at its simulation database."""
        if self._events is None:
            from quantstrip.db.handler import Database
            from quantstrip.paths import workspace

            self._events = Database(workspace().database)
        return self._events

    def overdue_jobs(self) -> list[tuple[str, float]]:
        """Jobs running longer than `job_timeout_s`: (job name, seconds running)."""
        if self.job_timeout_s is None:
            return []
        now = clock.monotonic()
        with self._running_lock:
            running = list(self._running.values())
        return [
            (name, now - started)
            for name, started, _ in running
            if now - started > self.job_timeout_s
        ]

    def longest_running_job(self) -> tuple[str, float, float] | None:
        """The job running longest right now: (name, seconds running, epoch start), if any."""
        now = clock.monotonic()
        with self._running_lock:
            running = list(self._running.values())
        if not running:
            return None
        name, started, epoch = min(running, key=lambda job: job[1])
        return name, now - started, epoch

    # ---- lifecycle -----------------------------------------------------------------------
    def stop(self) -> None:
        """Ask `run()` to return (signal-handler safe: only sets an event); `run()` then stops
        the scheduler and the process's risk watcher."""
        self._stop.set()

    def close(self) -> None:
        """Release what the client started without `run()` returning (a test or a notebook that
        built the client and called its jobs): the scheduler, the risk watcher of its guarded
        brokers, the events database. Safe to call more than once."""
        self._stop.set()
        if self.scheduler.running:
            self.scheduler.shutdown()
        self._release()
        if self._events is not None:
            self._events.close()
            self._events = None

    def _release(self) -> None:
        """End the risk watcher of this process's guarded brokers (the client is the process's
        one client). Only if a broker started one: a client without brokers imports none."""
        watcher = sys.modules.get("quantstrip.brokers.risk.watcher")
        if watcher is not None:
            watcher.stop_all()

    def run(
        self,
        heartbeat: Callable[[ClientBase], None] | None = None,
        heartbeat_interval_s: float = 5.0,
    ) -> None:
        """on_start, start the scheduler, beat until `stop()`, then on_stop. Blocks."""
        self.log.info("starting client %s", self.name)
        self._heartbeat = heartbeat
        self.on_start()
        self.scheduler.start()
        reported: set[str] = set()
        try:
            while True:
                overdue = self.overdue_jobs()
                if overdue:
                    for name, seconds in overdue:
                        if name not in reported:
                            reported.add(name)
                            self.log.error(
                                "job %s running for %.0f s, over its %.0f s limit: "
                                "heartbeat withheld so the daemon restarts this client",
                                name,
                                seconds,
                                self.job_timeout_s or 0,
                            )
                elif heartbeat is not None and self.scheduler.running:
                    heartbeat(self)
                if self._stop.wait(heartbeat_interval_s):
                    break
        finally:
            self.scheduler.shutdown()
            self.log.info("stopping client %s", self.name)
            try:
                self.on_stop()
            finally:
                self._release()
