"""`quantstrip` command line.

Each area registers its subcommands from its own module in `quantstrip/commands/` (a
`register(subparsers)` function setting `func` on its parsers). A module is imported only when
one of its commands runs: importing every one (pandas, DuckDB, Jupyter) made `quantstrip --help`
take 0.6 s and the daemon hold 140 MiB before it did anything. The table below is what the CLI
knows without importing: the command's name, its module and its one-line help.

Adding a command is one line in COMMANDS (plus its module's `register`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NamedTuple

from quantstrip.errors import QuantstripError


class Command(NamedTuple):
    name: str
    module: str  # quantstrip.commands.<module> registers it
    help: str


COMMANDS: list[Command] = [
    Command("init", "workspace", "create the data directory and database (idempotent)"),
    Command("db", "workspace", "database maintenance"),
    Command("up", "dashboard", "start the daemon and the dashboard; print the URL"),
    Command("viewer", "viewer", "people who may open the report pages"),
    Command("daemon", "clients", "run the daemon (supervises every client)"),
    Command("clients", "clients", "list and control clients"),
    Command("promote", "clients", "turn a research notebook or module into a client"),
    Command("service", "clients", "system service (systemd user unit)"),
    Command("report", "report", "print per-strategy portfolio statistics"),
    Command("query", "report", "run read-only SQL or a saved query"),
    Command("settings", "services", "read, change and validate settings"),
    Command("secrets", "services", "encrypted secrets"),
    Command("odbc", "odbc", "ODBC / Excel access to the database"),
    Command("flex", "flex", "Interactive Brokers Flex statements"),
    Command("demo", "demo", "simulate demo strategies into the database"),
    Command("halt", "risk", "refuse every order, cancel open orders, stop the client(s)"),
    Command("flatten", "risk", "stop new entries, cancel open orders, close positions at market"),
    Command("stop-entries", "risk", "refuse orders that open or add to a position"),
    Command("resume", "risk", "lift stop-entries, flatten's stop or a halt"),
    Command("risk", "risk", "risk controls: current state"),
    Command("marks", "risk", "prices that value positions"),
    Command("sweep", "sweep", "run a strategy over a parameter grid on Dask; list, show, cancel"),
]


def _chosen(argv: Sequence[str]) -> Command | None:
    """The command named on the line (the first word not starting with '-'), if known."""
    by_name = {c.name: c for c in COMMANDS}
    for word in argv:
        if not word.startswith("-"):
            return by_name.get(word)
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for this command line: the chosen command's module registers its full
    parsers; every other command is listed by name and help only. `argv=None` loads all (for
    tools that want every option)."""
    parser = argparse.ArgumentParser(
        prog="quantstrip", description="Quantstrip: research-to-production trading workbench."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    if argv is None:
        modules = list(dict.fromkeys(c.module for c in COMMANDS))
    else:
        chosen = _chosen(argv)
        modules = [chosen.module] if chosen else []
    for module in modules:
        importlib.import_module(f"quantstrip.commands.{module}").register(subparsers)
    registered = set(subparsers.choices)
    for command in COMMANDS:
        if command.name not in registered:
            subparsers.add_parser(command.name, help=command.help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Everything Quantstrip writes (ledger, settings, logs, outbox) and every process it starts
    # (daemon, clients, dashboard, kernels) is private to the owner (issue 17).
    from quantstrip.paths import private_umask

    private_umask()
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except QuantstripError as exc:
        print(f"quantstrip: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
