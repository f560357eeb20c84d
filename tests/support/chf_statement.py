"""IB's Flex statement of a CHF account trading SAP (EUR), NESN (CHF) and AAPL (USD), with an
AutoFX conversion, imported into a ledger the way `quantstrip flex reconcile --import` does:
the fixture of the currency tests (realised PnL in base, the report, the daily views)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from quantstrip import settings
from quantstrip.analytics.connection import reset
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


@pytest.fixture
def fresh_report_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings read afresh (no keyring) and no DuckDB engine left from another ledger."""
    monkeypatch.setenv("QUANTSTRIP_KEYRING", "0")
    settings._reset_for_tests()
    reset()
    yield
    reset()
    settings._reset_for_tests()
