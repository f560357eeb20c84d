"""`quantstrip` command line. Each area registers its subcommands from its own module in
`quantstrip/commands/`, so the CLI grows without one file owning every feature."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from quantstrip.errors import QuantstripError

# Modules in quantstrip/commands/ that expose `register(subparsers)`; each sets `func` on its
# parsers, taking the parsed args and returning an exit code.
COMMAND_MODULES = [
    "workspace",
    "odbc",
    "demo",
    "services",
    "report",
    "dashboard",
    "flex",
    "clients",
    "risk",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quantstrip", description="Quantstrip: research-to-production trading workbench."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"quantstrip.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
