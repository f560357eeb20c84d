"""When a module client that ended on its own is started again: backoff and crash-loop limit.

The budget is `restart.max_restarts` restarts within `restart.window_s`; the delay before each
restart doubles from `backoff_s` up to `max_backoff_s`. The restart times are wall-clock epoch
seconds because they are kept in the database (`clients.restart_times`, written by the mirror):
a daemon restarted in the middle of a crash loop carries on with what is left of the budget
instead of granting a new one, and a client it had given up on stays 'crashed' (see
`mirror.gave_up`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from quantstrip.daemon.registry import RestartPolicy


@dataclass(frozen=True)
class Decision:
    restart: bool  # False: do not restart (policy, or the crash-loop limit reached)
    delay_s: float = 0.0
    crash_loop: bool = False  # the limit was reached: the client is left 'crashed'
    restarts_in_window: int = 0


def backoff_s(policy: RestartPolicy, restarts_in_window: int) -> float:
    """Delay before the next restart when `restarts_in_window` restarts already happened."""
    return float(min(policy.backoff_s * 2**restarts_in_window, policy.max_backoff_s))


def in_window(times: list[float], policy: RestartPolicy, now: float) -> list[float]:
    return [t for t in times if now - t <= policy.window_s]


def decide(policy: RestartPolicy, failure: bool, times: list[float], now: float) -> Decision:
    """What to do after the client's process ended without being asked to. `times` are the
    restarts already made (epoch seconds); the caller appends `now` when it restarts."""
    if policy.policy == "never" or (policy.policy == "on-failure" and not failure):
        return Decision(restart=False)
    recent = in_window(times, policy, now)
    if len(recent) >= policy.max_restarts:
        return Decision(restart=False, crash_loop=True, restarts_in_window=len(recent))
    return Decision(
        restart=True, delay_s=backoff_s(policy, len(recent)), restarts_in_window=len(recent)
    )


def load_times(row: dict[str, Any] | None, signature: str) -> list[float]:
    """The restart times a previous daemon kept for these same files (none for changed ones)."""
    if not row or row.get("signature") != signature:
        return []
    try:
        return [float(t) for t in json.loads(row.get("restart_times") or "[]")]
    except (TypeError, ValueError):
        return []
