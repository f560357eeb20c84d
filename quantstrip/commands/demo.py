"""`quantstrip demo`: fill the workspace database with simulated trading history."""

from __future__ import annotations

import argparse

from quantstrip.db.handler import Database
from quantstrip.demo import build_demo
from quantstrip.paths import init_workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="simulate demo strategies into the database")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--years", type=int, default=2)
    demo.add_argument(
        "--if-empty", action="store_true", help="do nothing when the database already has fills"
    )
    demo.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    ws = init_workspace()
    if args.if_empty:
        with Database(ws.database) as db:
            existing = db.conn.execute("SELECT COUNT(*) FROM executions").fetchone()[0]
        if existing:
            print(f"demo skipped: the database already holds {existing} executions")
            return 0
    summary = build_demo(ws.database, seed=args.seed, years=args.years)
    print(
        f"demo history: {summary.executions} executions over {summary.days} days "
        f"for {summary.strategies} strategies in {ws.database}"
    )
    return 0
