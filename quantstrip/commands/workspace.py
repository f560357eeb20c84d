"""`quantstrip init` and `quantstrip db ...`: the data directory and the database."""

from __future__ import annotations

import argparse

from quantstrip.db.handler import Database
from quantstrip.db.migrate import SCHEMA_VERSION
from quantstrip.paths import init_workspace, make_private, workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    init = subparsers.add_parser("init", help="create the data directory and database (idempotent)")
    init.set_defaults(func=run_init)
    db = subparsers.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION")
    migrate = db_sub.add_parser("migrate", help="apply pending schema migrations")
    migrate.set_defaults(func=run_migrate)
    rebuild = db_sub.add_parser("rebuild-positions", help="recompute positions from executions")
    rebuild.set_defaults(func=run_rebuild)


def run_init(args: argparse.Namespace) -> int:
    for path in make_private(workspace()):
        print(f"made private (owner only): {path}")
    ws = init_workspace()
    with Database(ws.database) as db:
        version = db.conn.execute("PRAGMA user_version").fetchone()[0]
    print(
        f"workspace {ws.root}\ndata directory {ws.home}\ndatabase {ws.database} (schema v{version})"
    )
    return 0


def run_migrate(args: argparse.Namespace) -> int:
    with Database(workspace().database) as db:
        print(f"schema version {db.conn.execute('PRAGMA user_version').fetchone()[0]}")
    return 0 if SCHEMA_VERSION else 1


def run_rebuild(args: argparse.Namespace) -> int:
    with Database(workspace().database) as db:
        db.rebuild_positions()
        count = db.conn.execute("SELECT COUNT(*) FROM positions WHERE qty_micros <> 0").fetchone()
    print(f"positions rebuilt: {count[0]} open")
    return 0
