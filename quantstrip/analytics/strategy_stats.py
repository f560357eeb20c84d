"""Per-strategy statistics over any horizon, from their one definition in the database.

`v_performance` (migration 0010) defines net PnL, win rate, profit factor, average win and
loss, peak capital and return on capital, for each strategy and for the portfolio of them, over
the days of its `horizon` CTE. Excel and the SQL editor read it as v_strategy_stats and
v_portfolio_stats (all history). The report
needs the same numbers over its own dates and strategies: it runs the view's SQL, as stored in
the database, with that CTE narrowed, and adds for each strategy the capital it carried into
the horizon (held on the horizon's first day, so part of its peak). Nothing is re-derived here,
so the report, the SQL editor and Excel cannot drift apart.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd

from quantstrip.errors import QuantstripError

VIEW = "v_performance"
HORIZON_CTE = "horizon AS (SELECT * FROM v_strategy_days)"
DAY_COLUMNS = (
    "strategy, date, gross_pnl, commission, net_pnl, fills, trades, wins, losses, win_pnl, "
    "loss_pnl, capital_open, capital_close, capital_peak, strategy_id, unconverted, "
    "foreign_amounts"
)
# A strategy's capital carried into the horizon: a day with no PnL, opening at 0 and holding
# what the strategy held at the close of its last day before the horizon.
CARRIED_COLUMNS = (
    "strategy, date, 0.0, 0.0, 0.0, 0, 0, 0, 0, 0.0, 0.0, 0.0, capital_close, capital_close, "
    "strategy_id, 0, 0"
)
DAYS_TABLE = "report_days"
_HEAD = re.compile(rf"^\s*CREATE\s+VIEW\s+{VIEW}\s+AS\s+", re.IGNORECASE)


class DefinitionError(QuantstripError):
    """The database's v_performance is not the shape this code narrows (a newer migration
    changed it without keeping its `horizon` CTE)."""


def definition(db_path: Path) -> str:
    """The SELECT of v_performance as the migration wrote it (read-only open)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'view' AND name = ?", (VIEW,)
        ).fetchone()
    finally:
        conn.close()
    if row is None:
        raise DefinitionError(f"{db_path} has no {VIEW}: run `quantstrip init` to migrate it")
    select = _HEAD.sub("", row[0], count=1)
    if select == row[0] or select.count(HORIZON_CTE) != 1:
        raise DefinitionError(f"{VIEW} in {db_path} does not start with `WITH {HORIZON_CTE}`")
    return select.rstrip().rstrip(";")


def load_days(
    conn: duckdb.DuckDBPyConnection, end: date | None, strategies: list[str] | None
) -> str:
    """Read v_strategy_days up to `end` for the strategies once, into a temporary table of this
    cursor (the report's daily series, its horizon and the capital carried into it all come from
    it: one pass over the ledger). Returns the table's name."""
    clauses, params = [], []
    if end is not None:
        clauses.append("date <= ?")
        params.append(end)
    if strategies:
        clauses.append(f"strategy IN ({', '.join('?' * len(strategies))})")
        params.extend(strategies)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    conn.execute(
        f"CREATE OR REPLACE TEMP TABLE {DAYS_TABLE} AS "
        f"SELECT {DAY_COLUMNS} FROM v_strategy_days{where}",
        params,
    )
    return DAYS_TABLE


def narrowed(
    select: str,
    start: date | None,
    end: date | None,
    strategies: list[str] | None,
    source: str = "v_strategy_days",
) -> tuple[str, list[object]]:
    """The view's SELECT over the horizon's days of the chosen strategies, with parameters;
    `source` is v_strategy_days or a table loaded from it (`load_days`)."""
    days, days_params = ["fills > 0"], []
    if start is not None:
        days.append("date >= ?")
        days_params.append(start)
    if end is not None:
        days.append("date <= ?")
        days_params.append(end)
    chosen, chosen_params = "", []
    if strategies:
        chosen = f" AND strategy IN ({', '.join('?' * len(strategies))})"
        chosen_params = list(strategies)
    cte = f"horizon AS (SELECT {DAY_COLUMNS} FROM {source} WHERE {' AND '.join(days)}"
    cte += chosen
    params: list[object] = [*days_params, *chosen_params]
    if start is not None:
        cte += (
            f" UNION ALL SELECT {CARRIED_COLUMNS} FROM (SELECT {DAY_COLUMNS}, ROW_NUMBER() "
            f"OVER (PARTITION BY strategy_id ORDER BY date DESC) AS latest FROM {source} "
            f"WHERE date < ?{chosen}) AS before WHERE latest = 1 AND capital_close <> 0"
        )
        params += [start, *chosen_params]
    return select.replace(HORIZON_CTE, cte + ")"), params


def strategy_stats(
    conn: duckdb.DuckDBPyConnection,
    db_path: Path,
    start: date | None = None,
    end: date | None = None,
    strategies: list[str] | None = None,
    source: str = "v_strategy_days",
) -> pd.DataFrame:
    """v_performance over [start, end] (None: open) and the strategies (None: all), indexed by
    strategy; the portfolio row is 'Portfolio'."""
    sql, params = narrowed(definition(db_path), start, end, strategies, source)
    return conn.execute(sql, params).df().set_index("strategy")
