"""Module clients: `ClientBase`, its fluent scheduler, the calendar gate and the runner process.

`ClientBase` is imported on first use: the daemon imports `quantstrip.client.heartbeat` and
`services` without paying for the scheduler (APScheduler) it does not need while idle.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ClientBase"]


def __getattr__(name: str) -> Any:
    if name == "ClientBase":
        from quantstrip.client.base import ClientBase

        return ClientBase
    raise AttributeError(f"module 'quantstrip.client' has no attribute {name!r}")
