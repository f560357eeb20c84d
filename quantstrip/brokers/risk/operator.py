"""The operator's four commands, shared by the CLI and the monitor's buttons.

- stop entries: orders that would open or add to a position are refused; exits pass.
- flatten: stop entries, then every running client cancels its orders and closes its positions
  at market (entries stay stopped, or the strategy would buy straight back; `resume` lifts it).
- halt: every order is refused, running clients cancel their orders, then the daemon stops them.
- resume: back to active.

Scope: a client name, or '*' for every client (the stricter of a client's state and the global
one applies). Each command returns an `Outcome` listing what every running client reported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psutil

from quantstrip import clock
from quantstrip.brokers.risk import controls
from quantstrip.brokers.risk.rules import TradingState

DEFAULT_WAIT_S = 30.0


@dataclass
class Outcome:
    scope: str
    state: TradingState
    lines: list[str] = field(default_factory=list)
    ok: bool = True

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _label(scope: str) -> str:
    return "all clients" if scope == controls.ALL else f"client {scope}"


def stop_entries(scope: str, *, reason: str = "", by: str = "operator") -> Outcome:
    controls.set_state(scope, TradingState.STOP_ENTRIES, reason=reason, set_by=by)
    return Outcome(
        scope,
        TradingState.STOP_ENTRIES,
        [f"new entries stopped for {_label(scope)}; orders that reduce a position still pass"],
    )


def resume(scope: str, *, by: str = "operator") -> Outcome:
    controls.set_state(scope, TradingState.ACTIVE, set_by=by)
    lines = [f"{_label(scope)}: trading active"]
    if scope != controls.ALL:
        for control in controls.all_controls():
            if control.scope == controls.ALL and control.state is not TradingState.ACTIVE:
                lines.append(
                    f"note: all clients are still {control.state.value} (`resume --all` lifts it)"
                )
    return Outcome(scope, TradingState.ACTIVE, lines)


def flatten(
    scope: str, *, reason: str = "", by: str = "operator", wait_s: float = DEFAULT_WAIT_S
) -> Outcome:
    controls.set_state(scope, TradingState.STOP_ENTRIES, reason=reason or "flatten", set_by=by)
    outcome = Outcome(
        scope, TradingState.STOP_ENTRIES, [f"new entries stopped for {_label(scope)}"]
    )
    _carry_out(outcome, "flatten", reason, by, wait_s)
    return outcome


def halt(
    scope: str,
    *,
    reason: str = "",
    by: str = "operator",
    wait_s: float = DEFAULT_WAIT_S,
    stop_clients: bool = True,
) -> Outcome:
    controls.set_state(scope, TradingState.HALTED, reason=reason, set_by=by)
    outcome = Outcome(scope, TradingState.HALTED, [f"trading halted for {_label(scope)}"])
    _carry_out(outcome, "cancel_orders", reason, by, wait_s)
    if stop_clients:
        _stop_clients(outcome, scope)
    return outcome


def refresh_marks(
    scope: str = controls.ALL, *, by: str = "operator", wait_s: float = DEFAULT_WAIT_S
) -> Outcome:
    outcome = Outcome(scope, TradingState.ACTIVE)
    _carry_out(outcome, "refresh_marks", "", by, wait_s)
    return outcome


def _carry_out(outcome: Outcome, action: str, reason: str, by: str, wait_s: float) -> None:
    """Queue the action and wait (bounded) for every running guarded client to report.

    A client whose process has ended (killed, crashed, exited: its presence row outlives it by
    up to PRESENCE_S) is reported as such at once and not waited for: the operator flattening
    in a hurry must learn within a second that a client is dead, not after the timeout."""
    expected = {g.pid: g.client for g in controls.live_guards(outcome.scope)}
    action_id = controls.request_action(outcome.scope, action, reason=reason, requested_by=by)
    if not expected:
        outcome.lines.append(
            f"{action}: no running client with a broker in scope; nothing to carry out"
        )
        return
    deadline = clock.monotonic() + wait_s
    reported: dict[int, controls.Result] = {}
    ended: set[int] = set()
    while True:
        reported = {r.pid: r for r in controls.results(action_id) if r.pid is not None}
        ended |= {pid for pid in expected if pid not in reported and process_ended(pid)}
        if set(expected) <= set(reported) | ended or clock.monotonic() >= deadline:
            break
        time.sleep(0.2)
    for pid, client in sorted(expected.items(), key=lambda item: item[1]):
        result = reported.get(pid)
        if result is None:
            outcome.ok = False
            if pid in ended:
                controls.forget(pid)
                outcome.lines.append(
                    f"{client} (pid {pid}): its process has ended; nothing carried out "
                    "(orders it left at the broker stay there: check the broker)"
                )
            else:
                outcome.lines.append(f"{client} (pid {pid}): no answer within {wait_s:.0f} s")
        else:
            outcome.ok = outcome.ok and result.status == "done"
            outcome.lines.append(f"{client}: {result.status}: {result.detail}")


def process_ended(pid: int) -> bool:
    """The process is gone or a zombie (dead, not yet reaped by the daemon)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:  # another user's process: alive as far as we can tell
        return False


def _stop_clients(outcome: Outcome, scope: str) -> None:
    from quantstrip.daemon.control import ControlClient, DaemonUnavailable

    control = ControlClient()
    try:
        statuses = control.list_clients(fallback_to_db=False)
    except DaemonUnavailable:
        outcome.lines.append("daemon not running: no client process to stop")
        return
    for status in statuses:
        if scope != controls.ALL and status.name != scope:
            continue
        if status.state in ("stopped", "disabled", "invalid", "removed"):
            continue
        try:
            control.stop(status.name)
            outcome.lines.append(f"{status.name}: stop requested")
        except Exception as exc:
            outcome.ok = False
            outcome.lines.append(f"{status.name}: stop failed: {exc}")
