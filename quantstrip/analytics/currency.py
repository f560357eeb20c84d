"""The currency a report's figures are in, and what it refuses to add up.

Money in the ledger is stored in each fill's (each commission's) own currency. The per-day PnL
the report reads (v_strategy_days, migration 0018) is in the account's base currency: each
amount converted at its own stored rate, half up, by the writer's triggers. Two things would
still make a total meaningless, and the report refuses them with a typed error instead of
showing a number:
- an amount without a rate to base (a fill in EUR in a CHF account before any rate is known):
  its base figure is unknown, and a total without it would be silently short;
- strategies whose accounts have different base currencies (francs plus dollars).
Figures kept in the instruments' own currencies (round trips' wins and losses, capital deployed,
unrealised PnL) are withheld when the report's rows hold amounts in another currency than base.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from quantstrip.errors import QuantstripError

if TYPE_CHECKING:  # the end-of-day mail reads base currencies here without loading DuckDB
    import duckdb

# Report columns computed from amounts in the instruments' currencies (agg_daily_trips, capital
# deployed): withheld (None) when the report's rows hold amounts in another currency than base.
LOCAL_CURRENCY_COLUMNS = (
    "avg_win",
    "avg_loss",
    "profit_factor",
    "peak_capital",
    "return_on_capital",
)


class CurrencyError(QuantstripError):
    """The report's rows cannot be added up in one currency; the message says why."""


class MissingRateError(CurrencyError):
    """Amounts in the report's rows have no rate to the account's base currency."""

    def __init__(self, unconverted: int, currency: str | None) -> None:
        self.unconverted = unconverted
        base = currency or "the base currency"
        super().__init__(
            f"{unconverted} amount(s) (realised PnL of a fill, or a commission) have no rate to "
            f"{base}: no total is shown rather than one without them. Record the rates "
            "(Database.record_fx_rate, or import the broker's statement) and reload."
        )


@dataclass(frozen=True)
class Currency:
    """What the report's money is in: `code` (None for an empty ledger) and how many of its
    amounts were converted from another currency (0: all were in base already)."""

    code: str | None
    foreign_amounts: int


def base_currencies(conn: sqlite3.Connection, strategies: list[str] | None) -> list[str]:
    """The base currencies of the accounts the strategies (None: every strategy) traded in,
    sorted: the positions table is small, and its keys reach the accounts without a scan."""
    chosen, params = "", list(strategies or [])
    if strategies is not None:
        chosen = f" WHERE s.name IN ({', '.join('?' * len(strategies)) or 'NULL'})"
    return [
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT a.base_currency FROM positions p "
            "JOIN accounts a ON a.id = p.account_id JOIN strategies s ON s.id = p.strategy_id"
            f"{chosen} ORDER BY 1",
            params,
        )
    ]


def base_currency(db_path: Path, strategies: list[str] | None) -> str | None:
    """The one base currency of the accounts the strategies traded in (read-only sqlite3)."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        codes = base_currencies(conn, strategies or None)
        if not codes:  # no position written (yet): every account counts
            codes = [r[0] for r in conn.execute("SELECT DISTINCT base_currency FROM accounts")]
    finally:
        conn.close()
    if len(codes) > 1:
        raise CurrencyError(
            f"the chosen strategies trade in accounts with base currencies {', '.join(codes)}: "
            "their PnL cannot be added in one currency; choose strategies of one base currency"
        )
    return codes[0] if codes else None


def report_currency(
    conn: duckdb.DuckDBPyConnection,
    days: str,
    start: date | None,
    db_path: Path,
    strategies: list[str] | None,
) -> Currency:
    """Check the report's days (`days`: the table load_days filled) can be added in base, and
    say which currency that is; raises MissingRateError or CurrencyError otherwise."""
    since = " AND date >= ?" if start else ""
    unconverted, foreign = conn.execute(
        "SELECT COALESCE(SUM(unconverted), 0), COALESCE(SUM(foreign_amounts), 0) "
        f"FROM {days} WHERE fills > 0{since}",
        [start] if start else [],
    ).fetchone()
    code = base_currency(db_path, strategies)
    if unconverted:
        raise MissingRateError(int(unconverted), code)
    return Currency(code, int(foreign))
