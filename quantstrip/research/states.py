"""The states of a sweep's runs, defined once (stored as their values in the results table)."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """A finished run is not run again when the same sweep is started again; a failed or
        cancelled one is retried."""
        return self is RunStatus.SUCCESS


class SweepState(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"  # every run ended (some may have failed)
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # the coordinating process died: start it again to resume
