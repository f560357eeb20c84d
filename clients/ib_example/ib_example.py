"""IB bracket example: connect, place a bracket at the open, record everything, reconcile at
the end of the day. Adapt `entry_price` and the parameters; the rest is the platform's job.

- `IbBroker` reads host/port/client id from settings `[brokers.ib]`, reconnects on its own and
  catches up fills it missed while disconnected.
- The `Recorder` writes every order status, fill and commission to the database, once each.
- At 16:15 New York the positions the database holds are compared with IB's live positions
  and the differences e-mailed; `clients/eod_reconcile/` reconciles executions and positions
  against the day's Flex statement after IB publishes it.
"""

from __future__ import annotations

from decimal import Decimal

from quantstrip import ClientBase, db_handler, email_manager
from quantstrip.brokers import BracketRequest, InstrumentSpec, OrderRequest, Recorder
from quantstrip.brokers.ib import IbBroker


class IbExample(ClientBase):
    def __init__(self) -> None:
        super().__init__()
        self.display_name = "IB bracket example"
        p = self.parameters
        self.instrument = InstrumentSpec(p.get("symbol", "AAPL"), broker_contract_id=p.get("conid"))
        self.quantity = int(p.get("quantity", 10))
        self.take_profit = Decimal(str(p.get("take_profit_pct", 2.0))) / 100
        self.stop_loss = Decimal(str(p.get("stop_loss_pct", 1.0))) / 100
        self.broker = IbBroker()
        # Strategies are created explicitly: the production record refuses a name nobody created.
        db_handler.ensure_strategy(self.name)
        self.broker.subscribe(Recorder(db_handler.database(), client_name=self.name))
        self.scheduler.every().day.at("09:35", tz="America/New_York").on_sessions("XNYS").do(
            self.enter
        )
        self.scheduler.every().day.at("16:15", tz="America/New_York").on_sessions("XNYS").do(
            self.reconcile
        )

    def on_start(self) -> None:
        self.broker.connect()  # also emits today's fills (reqExecutions): stored once

    def on_stop(self) -> None:
        self.broker.close()

    def entry_price(self) -> Decimal:
        """The last close from IB's historical data (raises if IB reports an error)."""
        bars = self.broker.historical_bars(self.instrument, bar_size="1 day", duration="5 D")
        return bars[-1].close

    def enter(self) -> tuple[str, str, str]:
        price = self.entry_price()
        entry = OrderRequest(
            self.instrument,
            "BUY",
            self.quantity,
            "LMT",
            limit_price=price,
            strategy=self.name,
            client_name=self.name,
        )
        legs = self.broker.submit_bracket(
            BracketRequest(
                entry,
                take_profit_price=(price * (1 + self.take_profit)).quantize(Decimal("0.01")),
                stop_loss_price=(price * (1 - self.stop_loss)).quantize(Decimal("0.01")),
            )
        )
        self.log.info("bracket placed: %s", legs)
        return legs

    def reconcile(self) -> dict[str, object]:
        ours = {p.instrument.symbol: p.qty for p in self.broker.positions()}
        recorded = {
            row["symbol"]: Decimal(str(row["qty"]))
            for row in db_handler.query(
                "SELECT symbol, SUM(qty) AS qty FROM v_positions WHERE account = ? GROUP BY symbol",
                (self.broker.account,),
            )
        }
        differences = {
            s: (recorded.get(s, 0), ours.get(s, 0))
            for s in set(ours) | set(recorded)
            if recorded.get(s, 0) != ours.get(s, 0)
        }
        summary = {"positions at IB": ours, "differences (db, ib)": differences}
        email_manager.send_summary(
            summary, client=self.name, subject="IB end-of-day reconciliation"
        )
        return summary
