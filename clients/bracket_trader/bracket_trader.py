"""Bracket trader: entry, take profit and stop loss submitted as one unit.

The children are held until the entry fills, and are OCA siblings: when one fills the other is
cancelled (or reduced, on a partial fill). Every leg and fill is recorded with this client's
strategy, so the round trip shows up in `v_round_trips`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from quantstrip import ClientBase, db_handler
from quantstrip.brokers import BracketRequest, InstrumentSpec, OrderRequest, Recorder
from quantstrip.brokers.sim import SimBroker


class BracketTrader(ClientBase):
    def __init__(self) -> None:
        super().__init__()
        self.display_name = "Bracket trader (example)"
        p = self.parameters
        self.symbol = p.get("symbol", "AAPL")
        self.quantity = int(p.get("quantity", 50))
        self.take_profit = Decimal(str(p.get("take_profit_pct", 2.0))) / 100
        self.stop_loss = Decimal(str(p.get("stop_loss_pct", 1.0))) / 100
        self.broker = SimBroker(account="SIM-BRACKET", seed=2)
        # Strategies are created explicitly: the production record refuses a name nobody created.
        db_handler.ensure_strategy(self.name)
        self.broker.subscribe(Recorder(db_handler.database(), client_name=self.name))
        self.scheduler.every().day.at("10:00", tz="America/New_York").on_sessions("XNYS").do(
            self.job
        )

    def job(self, last_price: Decimal = Decimal("180.00")) -> tuple[str, str, str]:
        entry = OrderRequest(
            InstrumentSpec(self.symbol),
            "BUY",
            self.quantity,
            "LMT",
            limit_price=last_price,
            strategy=self.name,
            client_name=self.name,
        )
        ids = self.broker.submit_bracket(
            BracketRequest(
                entry,
                take_profit_price=(last_price * (1 + self.take_profit)).quantize(Decimal("0.01")),
                stop_loss_price=(last_price * (1 - self.stop_loss)).quantize(Decimal("0.01")),
            )
        )
        # Simulated market: the entry fills, then the price rises through the take profit.
        now = datetime.now(UTC)
        self.broker.on_quote(self.symbol, last_price, now + timedelta(seconds=1))
        self.broker.on_quote(
            self.symbol, last_price * (1 + 2 * self.take_profit), now + timedelta(seconds=2)
        )
        states = {oid: self.broker.order_status(oid) for oid in ids}
        self.log.info("bracket %s: %s", ids[0], states)
        return ids
