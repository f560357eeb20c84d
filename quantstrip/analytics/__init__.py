"""Analytics over the lifecycle database: DuckDB (read-only ATTACH of the SQLite file), metrics,
the pre-built query library and offline charts. Every figure comes from the shared `v_*` views,
so the report, the SQL editor and Excel agree to the cent."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# Each name is imported on first use (PEP 562): a page that only lists saved queries must not
# load pandas and DuckDB with the package (a second of a dashboard kernel's start under load).
_HOMES = {
    "connect": "connection",
    "cursor": "connection",
    "shared": "connection",
    "PortfolioReport": "metrics",
    "portfolio_report": "metrics",
    "QueryError": "queries",
    "QueryHandle": "queries",
    "ReadOnlyQueryError": "queries",
    "SavedQuery": "queries",
    "list_queries": "queries",
    "run_query": "queries",
}

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
