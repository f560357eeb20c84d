"""`quantstrip flex reconcile`: download (or read) a Flex statement, store it, reconcile it."""

from __future__ import annotations

import argparse
from pathlib import Path

from quantstrip.brokers.ib_flex import (
    client_from_settings,
    parse_statements,
    reconcile,
    store_statement,
)
from quantstrip.db.handler import Database
from quantstrip.paths import workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    flex = subparsers.add_parser("flex", help="Interactive Brokers Flex statements")
    actions = flex.add_subparsers(dest="flex_command", metavar="ACTION")
    run = actions.add_parser("reconcile", help="reconcile the database with a Flex statement")
    run.add_argument("--file", type=Path, help="a saved statement instead of downloading one")
    run.add_argument("--import-missing", action="store_true", help="record missing fills")
    run.add_argument("--tz", default="America/New_York", help="the statement's time zone")
    run.set_defaults(func=run_reconcile)


def run_reconcile(args: argparse.Namespace) -> int:
    xml = args.file.read_bytes() if args.file else client_from_settings().download()
    statements = parse_statements(xml, tz=args.tz)
    if not args.file:
        print(f"statement stored: {store_statement(xml, statements[0])}")
    clean = True
    with Database(workspace().database) as db:
        for statement in statements:
            result = reconcile(db, statement, import_missing=args.import_missing)
            print(f"account {statement.account}, {statement.from_date} to {statement.to_date}")
            print(result.summary())
            clean = clean and result.clean
    return 0 if clean or args.import_missing else 3
