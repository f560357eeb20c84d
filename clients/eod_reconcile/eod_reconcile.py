"""End-of-day position and execution reconciliation with IB's Flex Web Service.

Every NYSE session at 17:30 New York (IB publishes the day's activity after the close) the
client downloads the Flex query configured in `[brokers.flex]` (IB's SendRequest, then
GetStatement, retrying "statement generation in progress" and rate-limit answers), keeps the
statement under `var/statements/`, and compares it with the database:

- executions IB reports that the database lacks (a fill missed while disconnected), fills the
  database has that IB does not, fills whose side, quantity or price differ, and fills IB
  cancelled that the database still holds (a cancelled trade and its reversal net out);
- open positions per contract (conid), database vs statement;
- cash transactions (dividends, withholding tax, interest, fees, transfers), and each
  currency's ending cash against its starting cash plus the period's trades and cash.

A query covering several accounts answers one statement per account: each is reconciled. With
`import_missing = true` the missing fills and cash transactions are imported (fills attributed
to their order's strategy, else to `strategy`), each once, so running the reconciliation twice
never doubles anything. The result goes to the client's log, to a strategy event, and to one
e-mail per account whose subject says "clean" or "MISMATCH" so a desk can filter on it.
"""

from __future__ import annotations

from pathlib import Path

from quantstrip import ClientBase, db_handler, email_manager
from quantstrip.brokers.ib_flex import (
    Reconciliation,
    client_from_settings,
    parse_statements,
    reconcile,
    store_statement,
)
from quantstrip.paths import workspace


class EodReconcile(ClientBase):
    def __init__(self) -> None:
        super().__init__()
        self.display_name = "EOD reconciliation (Flex)"
        p = self.parameters
        self.import_missing = bool(p.get("import_missing", False))
        self.strategy = str(p.get("strategy", "unattributed"))
        # Strategies are created explicitly: the production record refuses a name nobody created.
        db_handler.ensure_strategy(self.strategy)
        self.statement_file = p.get("statement_file")
        at = str(p.get("at", "17:30"))
        self.scheduler.every().day.at(at, tz="America/New_York").on_sessions("XNYS").do(
            self.reconcile
        )

    def statement_xml(self) -> bytes | None:
        """The statement to reconcile: a saved file if one is named, else a Flex download."""
        if self.statement_file:
            path = Path(self.statement_file)
            return (path if path.is_absolute() else workspace().root / path).read_bytes()
        from quantstrip import settings

        if not settings.platform().brokers.flex.query_id:
            return None
        return client_from_settings().download()

    def reconcile(self) -> list[Reconciliation] | None:
        """Reconcile every account statement of the day's answer; None if there is none."""
        xml = self.statement_xml()
        if xml is None:
            self.log.warning(
                "nothing to reconcile against: set [brokers.flex] query_id and "
                "`quantstrip secrets set brokers.flex.token`, or the statement_file parameter"
            )
            return None
        statements = parse_statements(xml)
        saved = store_statement(xml, statements[0])
        db = db_handler.database()
        results = []
        for statement in statements:
            result = reconcile(
                db, statement, import_missing=self.import_missing, strategy=self.strategy
            )
            verdict = "clean" if result.clean else "MISMATCH"
            period = f"{statement.from_date}..{statement.to_date}"
            self.log.info("Flex %s %s: %s", statement.account, period, verdict)
            db.insert_strategy_event(
                self.strategy,
                "",
                "reconciliation",
                payload={
                    "account": statement.account,
                    "period": [statement.from_date, statement.to_date],
                    "clean": result.clean,
                    "imported": result.imported,
                    "imported_commissions": result.imported_commissions,
                    "imported_cash": result.imported_cash,
                    "statement": str(saved),
                },
            )
            email_manager.send(
                f"Flex reconciliation {statement.account} {_day(statement.to_date)}: {verdict}",
                f"{result.summary()}\n\nstatement kept at {saved}",
                client=self.name,
            )
            results.append(result)
        return results


def _day(flex_date: str) -> str:
    """A statement date as yyyy-mm-dd, whichever date format the query uses."""
    if len(flex_date) == 8 and flex_date.isdigit():
        return f"{flex_date[:4]}-{flex_date[4:6]}-{flex_date[6:]}"
    return flex_date
