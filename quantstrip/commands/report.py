"""`quantstrip report` and `quantstrip query`: analytics from the terminal.

pandas, DuckDB and the report are imported by the commands that use them, not with the module:
`quantstrip report --help` took 0.75 s loading them to print its options."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser("report", help="print per-strategy portfolio statistics")
    report.add_argument("--horizon", default="all", help="all, ytd, 1y, 3m")
    report.add_argument("--strategy", action="append", help="limit to a strategy (repeatable)")
    report.set_defaults(func=run_report)
    query = subparsers.add_parser("query", help="run read-only SQL or a saved query")
    query.add_argument("sql", nargs="?", help="SQL text (DuckDB dialect)")
    query.add_argument("--name", help="a saved query's name (see --list)")
    query.add_argument("--list", action="store_true", help="list saved queries")
    query.add_argument("--limit", type=int, default=50)
    query.set_defaults(func=run_query_command)


def run_report(args: argparse.Namespace) -> int:
    import pandas as pd

    from quantstrip.analytics import portfolio_report

    report = portfolio_report(horizon=args.horizon, strategies=args.strategy)
    columns = ["net_pnl", "commission", "sharpe", "max_drawdown", "trades", "win_rate"]
    with pd.option_context("display.width", 160, "display.float_format", "{:,.2f}".format):
        print(report.stats[columns].to_string())
    return 0


def run_query_command(args: argparse.Namespace) -> int:
    import pandas as pd

    from quantstrip.analytics import list_queries, run_query

    saved = {q.name: q for q in list_queries()}
    if args.list:
        for query in saved.values():
            print(f"{query.name:24} {query.title} ({query.source})")
        return 0
    if args.name:
        if args.name not in saved:
            print(f"quantstrip: error: no saved query {args.name!r} (see --list)")
            return 1
        sql = saved[args.name].sql
    elif args.sql:
        sql = args.sql
    else:
        print("quantstrip: error: give SQL or --name")
        return 2
    frame = run_query(sql, limit=args.limit)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(frame.to_string(index=False))
    return 0
