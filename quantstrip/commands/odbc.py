"""`quantstrip odbc install`: register the read-only `Quantstrip` DSN for Excel and ODBC tools."""

from __future__ import annotations

import argparse
from pathlib import Path

from quantstrip.odbc import VIEWS, install_dsn, windows_instructions
from quantstrip.paths import workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    odbc = subparsers.add_parser("odbc", help="ODBC / Excel access to the database")
    actions = odbc.add_subparsers(dest="odbc_command", metavar="ACTION")
    install = actions.add_parser("install", help="register the Quantstrip DSN in the user odbc.ini")
    install.add_argument(
        "--odbc-ini", type=Path, help="file to write (default $ODBCINI or ~/.odbc.ini)"
    )
    install.set_defaults(func=run_install)


def run_install(args: argparse.Namespace) -> int:
    database = workspace().database
    try:
        result = install_dsn(database, args.odbc_ini)
    except FileNotFoundError as exc:
        print(f"quantstrip: error: {exc}")
        return 1
    print(f"DSN 'Quantstrip' written to {result.odbc_ini} (driver {result.driver}, read-only)")
    print(f"connection string: {result.connection_string}")
    print(f"views: {', '.join(VIEWS)}")
    print()
    print(windows_instructions(database))
    return 0
