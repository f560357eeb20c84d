"""Interactive Brokers Flex Web Service: download, parse, store and reconcile statements.

`client` downloads (SendRequest, then GetStatement, retrying IB's "not yet" answers and network
failures), `statement` parses every account statement of an answer, `reconcile` compares one
with the database and imports what is missing through the Recorder.
"""

from __future__ import annotations

from quantstrip.brokers.ib_flex.client import (
    RETRYABLE,
    FlexClient,
    FlexError,
    client_from_settings,
)
from quantstrip.brokers.ib_flex.reconcile import (
    Reconciliation,
    reconcile,
    reconcile_all,
    store_statement,
)
from quantstrip.brokers.ib_flex.statement import (
    FlexCash,
    FlexCashTransaction,
    FlexFormatError,
    FlexPosition,
    FlexStatement,
    FlexTrade,
    flex_time,
    parse_statement,
    parse_statements,
)

__all__ = [
    "RETRYABLE",
    "FlexCash",
    "FlexCashTransaction",
    "FlexClient",
    "FlexError",
    "FlexFormatError",
    "FlexPosition",
    "FlexStatement",
    "FlexTrade",
    "Reconciliation",
    "client_from_settings",
    "flex_time",
    "parse_statement",
    "parse_statements",
    "reconcile",
    "reconcile_all",
    "store_statement",
]
