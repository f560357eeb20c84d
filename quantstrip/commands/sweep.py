"""`quantstrip sweep`: run a parameter sweep; `--list`, `--show NAME`, `--cancel NAME`.

Registering imports nothing heavy: Dask, papermill and pandas load only when a sweep runs.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    sweep = subparsers.add_parser(
        "sweep",
        help="run a strategy over a parameter grid on Dask; list, show, cancel",
        description=(
            "Runs SOURCE once per point of the grid, each run in its own simulation database; "
            "results go to $QUANTSTRIP_HOME/research/<name>/results.parquet. Starting the same "
            "sweep again skips the runs that finished. Ctrl-C cancels the runs cleanly."
        ),
    )
    sweep.add_argument("source", nargs="?", help="notebook (.ipynb) or module (file.py[:function])")
    sweep.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUES",
        help="values a,b,c or an inclusive range start:stop:step (repeatable)",
    )
    sweep.add_argument("--symbols", help="comma-separated symbols: one run per symbol")
    sweep.add_argument("--windows", help="walk-forward windows, e.g. train=12M,test=3M[,anchored]")
    sweep.add_argument("--sample", type=int, help="run N points drawn at random from the grid")
    sweep.add_argument("--seed", type=int, help="seed of the runs and of --sample")
    sweep.add_argument("--start", help="first day (default: the strategy's own start)")
    sweep.add_argument("--end", help="last day (default: the strategy's own end)")
    sweep.add_argument("--name", help="the sweep's name (default: source and a hash of the grid)")
    sweep.add_argument("--cluster", help="Dask scheduler address (default: research.cluster)")
    sweep.add_argument("--workers", type=int, help="runs at once on the local cluster")
    sweep.add_argument("--memory-limit", help="memory per run, e.g. 4GB (research.memory_limit)")
    sweep.add_argument("--time-limit", type=float, default=3600.0, help="seconds per run")
    sweep.add_argument("--kernel", help="Jupyter kernel name (default: the notebook's)")
    sweep.add_argument(
        "--fresh-kernels", action="store_true", help="a new kernel for every run (slower)"
    )
    sweep.add_argument("--metric", default="sharpe", help="metric to rank runs by")
    sweep.add_argument("--top", type=int, default=10, help="best runs to print")
    sweep.add_argument("--no-progress", action="store_true", help="no progress bar")
    sweep.add_argument("--list", action="store_true", help="list the workspace's sweeps")
    sweep.add_argument("--show", metavar="NAME", help="print a stored sweep's best runs")
    sweep.add_argument("--cancel", metavar="NAME", help="ask a running sweep to stop")
    sweep.set_defaults(func=run_sweep)


def run_sweep(args: argparse.Namespace) -> int:
    from quantstrip.research.coordinator import sweep

    if args.list or args.show or args.cancel:
        return run_stored(args)
    if not args.source:
        print("quantstrip: error: give a notebook or module to sweep (or --list)")
        return 2

    try:
        result = sweep(
            args.source,
            args.param,
            symbols=args.symbols,
            windows=args.windows,
            sample=args.sample,
            seed=args.seed,
            start=args.start,
            end=args.end,
            name=args.name,
            cluster=args.cluster,
            workers=args.workers,
            memory_limit=args.memory_limit,
            time_limit_s=args.time_limit,
            kernel=args.kernel,
            fresh_kernels=args.fresh_kernels,
            progress=not args.no_progress,
        )
    except KeyboardInterrupt:
        print("quantstrip: sweep cancelled; start it again to run what did not finish")
        return 130
    show(result, args.metric, args.top)
    return 1 if result.outcome.failed else 0


def show(result, metric: str, top: int) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    results = result.results()
    columns = [*result.parameters, "seed", metric, "net_pnl", "max_drawdown", "trades"]
    columns = list(dict.fromkeys(c for c in columns if c in results.columns))
    with pd.option_context("display.width", 160, "display.max_columns", 30):
        best = result.best(metric, top)
        if not best.empty:
            print(f"\nbest {len(best)} of {len(results)} runs by {metric}:")
            print(best[columns].to_string(index=False, float_format="{:,.3f}".format))
        failed = results[results["status"] != "success"] if len(results) else results
        for _, row in failed.iterrows():
            values = " ".join(f"{p}={row[p]}" for p in result.parameters)
            print(f"{row['status']}: run {row['number']} ({values}): {row['error']}")
        warning = result.peak_warning(metric)
        if warning is not None:
            print(f"\nwarning: {warning.message}")
        folds = result.walk_forward(metric)
        if not folds.empty:
            print(
                f"\nwalk-forward ({result.manifest.get('windows')}), chosen by in-sample {metric}:"
            )
            print(folds.to_string(index=False, float_format="{:,.3f}".format))
            print(f"out-of-sample net PnL over the test windows: {folds['oos_net_pnl'].sum():,.2f}")
    print(f"\nquery: duckdb -c \"SELECT * FROM '{result.store.directory}/results.parquet'\"")


def run_stored(args: argparse.Namespace) -> int:
    from quantstrip.research.results import Sweep, sweeps
    from quantstrip.research.store import SweepStore

    if args.cancel:
        store = SweepStore.named(args.cancel)
        if store.manifest().get("state") != "running":
            print(f"sweep {args.cancel} is not running")
            return 1
        store.request_cancel()
        print(f"sweep {args.cancel}: cancel requested")
        return 0
    if args.show:
        show(Sweep.load(args.show), args.metric, args.top)
        return 0
    listing = sweeps()
    if listing.empty:
        print("no sweeps yet: quantstrip sweep NOTEBOOK -p name=values")
    else:
        print(listing.to_string(index=False))
    return 0
