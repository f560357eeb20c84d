"""Daily signal: the seed's `MyStrategy` shape, annotated.

Every NYSE session at 16:00 New York it computes a moving-average signal, sends the order to the
simulated broker, records a strategy event and mails a summary. Replace `prices()` with your
data source and `SimBroker` with `IbBroker` to go live; nothing else changes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from quantstrip import ClientBase, db_handler, email_manager
from quantstrip.brokers import InstrumentSpec, OrderRequest, Recorder
from quantstrip.brokers.sim import SimBroker
from quantstrip.demo import SYMBOLS, business_days, generate_bars


class DailySignal(ClientBase):
    def __init__(self) -> None:
        super().__init__()
        self.display_name = "Daily signal (example)"
        self.symbol: str = self.parameters.get("symbol", "SPY")
        self.quantity = int(self.parameters.get("quantity", 100))
        # The broker's events go to the database through the recorder, idempotently.
        self.broker = SimBroker(account="SIM-DAILY", seed=1)
        # Strategies are created explicitly: the production record refuses a name nobody created.
        db_handler.ensure_strategy(self.name)
        self.broker.subscribe(Recorder(db_handler.database(), client_name=self.name))
        # Run on NYSE sessions only, at the close, in New York time.
        self.scheduler.every().day.at("16:00", tz="America/New_York").on_sessions("XNYS").do(
            self.job
        )

    def prices(self, today: date) -> list[Decimal]:
        """Sixty closes up to today (generated offline here; use your market data in practice)."""
        days = business_days(today, 60)
        return [
            bar.close
            for bar in generate_bars({self.symbol: SYMBOLS[self.symbol]}, days, 3)[self.symbol]
        ]

    def job(self) -> dict[str, object]:
        closes = self.prices(datetime.now(UTC).date())
        fast, slow = sum(closes[-10:]) / 10, sum(closes[-30:]) / 30
        signal = 1 if fast > slow else -1
        db_handler.insert_strategy_event(
            self.name, self.symbol, "signal", signal, {"fast": fast, "slow": slow}
        )
        spec = InstrumentSpec(self.symbol)
        held = sum(
            (p.qty for p in self.broker.positions() if p.instrument.symbol == self.symbol),
            Decimal(0),
        )
        side = "BUY" if signal > 0 and held <= 0 else "SELL" if signal < 0 and held > 0 else None
        if side:
            self.broker.submit(
                OrderRequest(spec, side, self.quantity, strategy=self.name, client_name=self.name)
            )
            # In simulation the next price fills the order; a live broker fills on its own.
            now = datetime.now(UTC)
            self.broker.on_quote(self.symbol, closes[-1], now + timedelta(seconds=1))
        summary = {
            "symbol": self.symbol,
            "signal": signal,
            "fast": f"{fast:.2f}",
            "slow": f"{slow:.2f}",
            "order": side or "none",
        }
        email_manager.send_summary(summary, client=self.name)
        self.log.info("signal %s for %s: %s", signal, self.symbol, side or "no order")
        return summary
