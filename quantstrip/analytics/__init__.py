"""Analytics over the lifecycle database: DuckDB (read-only ATTACH of the SQLite file), metrics,
the pre-built query library and offline charts. Every figure comes from the shared `v_*` views,
so the report, the SQL editor and Excel agree to the cent."""

from __future__ import annotations

from quantstrip.analytics.connection import connect, cursor, shared
from quantstrip.analytics.metrics import PortfolioReport, portfolio_report
from quantstrip.analytics.queries import (
    QueryError,
    QueryHandle,
    ReadOnlyQueryError,
    SavedQuery,
    list_queries,
    run_query,
)

__all__ = [
    "PortfolioReport",
    "QueryError",
    "QueryHandle",
    "ReadOnlyQueryError",
    "SavedQuery",
    "connect",
    "cursor",
    "list_queries",
    "portfolio_report",
    "run_query",
    "shared",
]
