"""IB's Flex statement of a CHF account trading SAP (EUR), NESN (CHF) and AAPL (USD), with an
AutoFX conversion, imported into a ledger the way `quantstrip flex reconcile --import` does:
the fixture of the currency tests (realised PnL in base, the report, the daily views)."""

from __future__ import annotations

from pathlib import Path

from quantstrip.brokers.ib_flex import parse_statement
from quantstrip.brokers.ib_flex.reconcile import reconcile
from quantstrip.db.handler import Database

CHF_STATEMENT = Path(__file__).resolve().parents[1] / "fixtures" / "ib" / "flex_chf_eur_usd.xml"


def import_chf_statement(path: Path, strategy: str) -> None:
    """The statement's eight fills (and their commissions and rates) under `strategy`."""
    with Database(path) as db:
        db.ensure_strategy(strategy)
        result = reconcile(
            db, parse_statement(CHF_STATEMENT.read_bytes()), import_missing=True, strategy=strategy
        )
        assert len(result.imported) == 8 and not result.mismatched
