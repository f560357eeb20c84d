"""CLI: `quantstrip halt|flatten|stop-entries|resume CLIENT|--all`, `quantstrip risk status`,
`quantstrip marks refresh`. The same operations as the monitor's buttons
(`quantstrip.brokers.risk.operator`)."""

from __future__ import annotations

import argparse
import getpass
import sys

COMMANDS = {
    "halt": "refuse every order, cancel open orders, stop the client(s)",
    "flatten": "stop new entries, cancel open orders, close positions at market",
    "stop-entries": "refuse orders that open or add to a position",
    "resume": "lift stop-entries, flatten's stop or a halt",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    for name, help_text in COMMANDS.items():
        description = help_text + (" (exits still pass)" if name == "stop-entries" else "")
        parser = subparsers.add_parser(name, help=help_text, description=description)
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("client", nargs="?", help="client name")
        target.add_argument("--all", action="store_true", help="every client")
        if name != "resume":
            parser.add_argument("--reason", default="", help="recorded with the state")
        if name in ("halt", "flatten"):
            parser.add_argument(
                "--wait", type=float, default=30.0, help="seconds to wait for running clients"
            )
        parser.set_defaults(func=run, command_name=name)
    risk = subparsers.add_parser("risk", help="risk controls: current state")
    risk_sub = risk.add_subparsers(dest="risk_command", metavar="ACTION")
    status = risk_sub.add_parser("status", help="the operator's controls and guarded clients")
    status.set_defaults(func=run_status)
    marks = subparsers.add_parser("marks", help="prices that value positions")
    marks_sub = marks.add_subparsers(dest="marks_command", metavar="ACTION")
    refresh = marks_sub.add_parser("refresh", help="running clients price what they hold now")
    refresh.add_argument("--wait", type=float, default=30.0)
    refresh.set_defaults(func=run_refresh_marks)


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


def run(args: argparse.Namespace) -> int:
    from quantstrip.brokers.risk import controls, operator

    scope = controls.ALL if args.all else args.client
    by = _who()
    name = args.command_name
    if name == "halt":
        outcome = operator.halt(scope, reason=args.reason, by=by, wait_s=args.wait)
    elif name == "flatten":
        outcome = operator.flatten(scope, reason=args.reason, by=by, wait_s=args.wait)
    elif name == "stop-entries":
        outcome = operator.stop_entries(scope, reason=args.reason, by=by)
    else:
        outcome = operator.resume(scope, by=by)
    print(outcome.text)
    return 0 if outcome.ok else 1


def run_status(args: argparse.Namespace) -> int:
    from quantstrip.brokers.risk import controls

    rows = controls.all_controls()
    if not rows:
        print("every client active (no control set)")
    for row in rows:
        label = "ALL" if row.scope == controls.ALL else row.scope
        reason = f" ({row.reason})" if row.reason else ""
        print(f"{label:24} {row.state.value:13} {row.updated_at[:19]} by {row.set_by}{reason}")
    guards = controls.live_guards()
    if guards:
        print("\nrunning clients with guarded brokers:")
        for guard in guards:
            print(f"  {guard.client or '-':22} pid {guard.pid:<7} {guard.mode:10} {guard.brokers}")
    return 0


def run_refresh_marks(args: argparse.Namespace) -> int:
    from quantstrip.brokers.risk import operator

    outcome = operator.refresh_marks(wait_s=args.wait)
    print(outcome.text or "done")
    if not outcome.ok:
        print("some clients did not answer", file=sys.stderr)
    return 0 if outcome.ok else 1
