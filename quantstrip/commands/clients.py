"""CLI: `quantstrip daemon`, `quantstrip clients ...`, `quantstrip promote`, `quantstrip service`.

Everything but `daemon` talks to the running daemon through `ControlClient`; `clients list`
falls back to the state mirrored in the database when the daemon is down.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from quantstrip.daemon.states import ClientState
from quantstrip.paths import workspace

ACTIONS = ("start", "stop", "restart", "enable", "disable", "run-now")


def register(subparsers: argparse._SubParsersAction) -> None:
    daemon = subparsers.add_parser("daemon", help="run the daemon (supervises every client)")
    daemon.set_defaults(func=run_daemon)

    clients = subparsers.add_parser("clients", help="list and control clients")
    sub = clients.add_subparsers(dest="clients_command", metavar="ACTION")
    listing = sub.add_parser("list", help="every client with its state")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=run_list)
    for action in ACTIONS:
        p = sub.add_parser(action, help=f"{action} a client")
        p.add_argument("name")
        p.set_defaults(func=run_action, action=action)
    logs = sub.add_parser("logs", help="show a client's log")
    logs.add_argument("name")
    logs.add_argument("-n", "--lines", type=int, default=50)
    logs.add_argument("-f", "--follow", action="store_true")
    logs.set_defaults(func=run_logs)

    promote = subparsers.add_parser(
        "promote", help="turn a research notebook or module into a client"
    )
    promote.add_argument("source", type=Path, help="notebook (.ipynb) or module (.py)")
    promote.add_argument("--name", required=True)
    promote.add_argument("--schedule", help='e.g. "every day at 16:00" or "30 9 * * 1-5"')
    promote.add_argument(
        "--tz", help="the schedule's time zone (default: the calendar's exchange zone, else UTC)"
    )
    promote.add_argument("--calendar", help="exchange code, e.g. XNYS: run on sessions only")
    promote.add_argument("--class", dest="class_name", help="ClientBase subclass (modules)")
    promote.add_argument("--mode", default="simulation", choices=["simulation", "paper", "live"])
    promote.add_argument("--disabled", action="store_true", help="register it disabled")
    promote.add_argument("--force", action="store_true", help="replace an existing client")
    promote.set_defaults(func=run_promote)

    service = subparsers.add_parser("service", help="system service (systemd user unit)")
    service_sub = service.add_subparsers(dest="service_command", metavar="ACTION")
    install = service_sub.add_parser("install", help="write the systemd user unit")
    install.add_argument("--path", type=Path, help="write the unit here instead")
    install.set_defaults(func=run_service_install)


def run_daemon(args: argparse.Namespace) -> int:
    from quantstrip.daemon.supervisor import run_daemon as run

    return run()


def run_list(args: argparse.Namespace) -> int:
    from quantstrip.daemon.control import ControlClient
    from quantstrip.dashboard.display import format_time

    statuses = ControlClient().list_clients()
    if args.json:
        print(json.dumps([s.as_dict() for s in statuses], indent=2))
        return 0
    if statuses and not statuses[0].daemon_running:
        print("(daemon not running: last recorded state)")
    print(f"{'NAME':24} {'KIND':8} {'STATE':11} {'PID':>7} {'HEARTBEAT':>9}  NEXT RUN / ERROR")
    for s in statuses:
        age = f"{s.heartbeat_age_s:.1f}s" if s.heartbeat_age_s is not None else "-"
        # The operator's zone, named, to the second (the JSON keeps the canonical UTC text).
        tail = format_time(s.next_run)
        if s.last_error and s.state in (
            ClientState.CRASHED,
            ClientState.INVALID,
            ClientState.RESTARTING,
        ):
            tail = s.last_error
        print(f"{s.name:24} {s.kind:8} {s.state:11} {s.pid or '-':>7} {age:>9}  {tail}")
    return 0


def run_action(args: argparse.Namespace) -> int:
    from quantstrip.daemon.control import ControlClient

    client = ControlClient()
    method = getattr(client, args.action.replace("-", "_"))
    result = method(args.name)
    print(" ".join(f"{k}={v}" for k, v in result.items()))
    return 0


def log_file(name: str) -> Path | None:
    """The client's log: the logger's stream if it wrote one, else the raw process output."""
    logs = workspace().logs
    candidates = [logs / f"{name}.log", logs / "process" / f"{name}.log"]
    try:
        from quantstrip import logger

        candidates.insert(0, Path(logger.log_path(name)))
    except Exception:
        pass
    existing = [p for p in candidates if p.is_file()]
    return existing[0] if existing else None


def run_logs(args: argparse.Namespace) -> int:
    path = log_file(args.name)
    if path is None:
        print(f"no log for {args.name} under {workspace().logs}", file=sys.stderr)
        return 1
    lines = path.read_text(errors="replace").splitlines()[-args.lines :]
    print("\n".join(lines))
    if args.follow:
        with open(path, errors="replace") as f:
            f.seek(0, 2)
            try:
                while True:
                    line = f.readline()
                    if line:
                        print(line, end="", flush=True)
                    else:
                        time.sleep(0.5)
            except KeyboardInterrupt:
                return 0
    return 0


def run_promote(args: argparse.Namespace) -> int:
    from quantstrip.promote import promote

    toml_path = promote(
        args.source,
        name=args.name,
        schedule=args.schedule,
        tz=args.tz,
        calendar=args.calendar,
        class_name=args.class_name,
        mode=args.mode,
        enabled=not args.disabled,
        force=args.force,
    )
    print(f"client {args.name} registered: {toml_path}")
    print("the daemon picks it up within a second (`quantstrip clients list`)")
    return 0


def run_service_install(args: argparse.Namespace) -> int:
    from quantstrip.daemon.service import install_unit

    path = install_unit(args.path)
    print(f"wrote {path}")
    if args.path is None:
        print("enable and start it with:\n  systemctl --user daemon-reload")
        print("  systemctl --user enable --now quantstrip")
        print("(to keep it running after logout: loginctl enable-linger $USER)")
    return 0
