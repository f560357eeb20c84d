"""`quantstrip odbc install | snapshot`: the guarded, read-only `Quantstrip` DSN for Excel and
ODBC tools, and a ledger snapshot for clients that cannot load the guard (Windows)."""

from __future__ import annotations

import argparse
from pathlib import Path

from quantstrip.odbc import VIEWS, install_dsn, windows_instructions, write_snapshot
from quantstrip.paths import workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    odbc = subparsers.add_parser("odbc", help="ODBC / Excel access to the database")
    actions = odbc.add_subparsers(dest="odbc_command", metavar="ACTION")
    install = actions.add_parser("install", help="register the Quantstrip DSN in the user odbc.ini")
    install.add_argument(
        "--odbc-ini", type=Path, help="file to write (default $ODBCINI or ~/.odbc.ini)"
    )
    install.set_defaults(func=run_install)
    snapshot = actions.add_parser(
        "snapshot", help="write a consistent copy of the ledger (for Windows ODBC clients)"
    )
    snapshot.add_argument("--to", type=Path, required=True, help="the snapshot file to replace")
    snapshot.set_defaults(func=run_snapshot)


def run_install(args: argparse.Namespace) -> int:
    database = workspace().database
    try:
        result = install_dsn(database, args.odbc_ini)
    except FileNotFoundError as exc:
        print(f"quantstrip: error: {exc}")
        return 1
    print(f"DSN 'Quantstrip' written to {result.odbc_ini} (driver {result.driver}, read-only)")
    print(
        f"guard {result.guard}: checked through unixODBC, "
        + ", ".join(f"{probe} refused" for probe in result.check.refused)
    )
    print("freshness: live (every query reads the ledger as last committed)")
    print(f"connection string: {result.connection_string}")
    print(f"views: {', '.join(VIEWS)}")
    print()
    print(windows_instructions(database))
    return 0


def run_snapshot(args: argparse.Namespace) -> int:
    target = write_snapshot(workspace().database, args.to)
    print(f"snapshot of the ledger written to {target} (as fresh as now; schedule it)")
    return 0
