"""RiskGuard: the one gate between a client and a broker adapter.

Every `Broker` owns one (see `brokers/base.py`); its order entry calls `RiskGuard.call`, which
serialises broker calls, gathers the facts an order is judged on (operator state, limits from
settings, the strategy's position and working orders in the broker's ledger, a fresh price, the
day's PnL, the order rate) and lets `rules.check` decide. A refusal is recorded as a strategy
event (ledger) and a client event (workspace), alerted by e-mail, and raised as `OrderRefused`.

The guard also carries out the operator's actions for its broker (flatten, cancel orders, refresh
marks) when the process watcher asks it to; its own orders then bypass the checks.

The price an order is judged at is `prices`'s; recording and alerting a refusal is `refusals`'s.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from quantstrip.brokers.events import BracketRequest, OrderRequest, utc
from quantstrip.brokers.risk import controls, exposure
from quantstrip.brokers.risk.prices import fresh_price, order_price
from quantstrip.brokers.risk.refusals import record_refusal, wait_for_alerts
from quantstrip.brokers.risk.rules import (
    DayLoss,
    OrderFacts,
    OrderRefused,
    Rule,
    ScopeState,
    TradingState,
    check,
    effective_limits,
)
from quantstrip.settings_models import RiskLimits, RiskSettings

if TYPE_CHECKING:
    import sqlite3

    from quantstrip.brokers.base import Broker

# wait_for_alerts lives in refusals; kept importable from here.
__all__ = ["RiskGuard", "current_client", "day_start", "reset_order_counts", "wait_for_alerts"]

log = logging.getLogger(__name__)

# Orders placed per client in this process, by the broker's market time (rate limit).
_recent: dict[str, deque[datetime]] = defaultdict(deque)
_recent_lock = threading.Lock()
RATE_WINDOW = timedelta(minutes=1)
NO_LIMITS = RiskLimits()


def risk_settings() -> RiskSettings:
    from quantstrip import settings

    return settings.platform().risk


def current_client() -> str | None:
    return os.environ.get("QUANTSTRIP_CLIENT") or None


def day_start(moment: datetime, zone: str) -> datetime:
    """Midnight of the moment's day in the zone, as an aware datetime."""
    local = moment.astimezone(ZoneInfo(zone))
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


class RiskGuard:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.lock = threading.RLock()
        self._depth = 0
        from quantstrip.brokers.risk import watcher

        watcher.register(self)

    # ---- the gate -----------------------------------------------------------------------------
    def call(
        self, name: str, method: Callable[..., Any], broker: Broker, args: tuple, kwargs: dict
    ) -> Any:
        with self.lock:
            if self._depth:  # inside a checked call, or an operator action: already decided
                return method(broker, *args, **kwargs)
            with self.inside():
                request = self._request(name, args, kwargs)
                if request is not None:
                    self.check(request)
                result = method(broker, *args, **kwargs)
                if request is not None and name in ("submit", "submit_bracket"):
                    self._count(request)
                return result

    @contextmanager
    def inside(self) -> Iterator[None]:
        """Broker calls made in this block are not checked again (nested or the operator's)."""
        with self.lock:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1

    def _request(self, name: str, args: tuple, kwargs: dict) -> OrderRequest | None:
        """The order to judge for a call (None: the call cannot add exposure)."""
        first = args[0] if args else next(iter(kwargs.values()), None)
        if name == "submit" and isinstance(first, OrderRequest):
            return first
        if name == "submit_bracket" and isinstance(first, BracketRequest):
            return first.entry  # the take-profit and stop-loss legs only close it
        if name == "modify":
            return self._modification(str(first), kwargs)
        return None

    def _modification(self, client_order_id: str, kwargs: dict) -> OrderRequest | None:
        """A modify that raises an order's quantity is judged as an order for the increase."""
        new_qty = kwargs.get("qty")
        current = next(
            (o for o in self.broker.open_orders() if o.client_order_id == client_order_id), None
        )
        if current is None:
            # Unknown here: the adapter refuses it; still, no modify while halted.
            self._refuse_if_halted(current_client())
            return None
        if new_qty is None or Decimal(str(new_qty)) <= current.qty:
            self._refuse_if_halted(current.client_name or current_client())
            return None
        return OrderRequest(
            current.instrument,
            current.side,
            Decimal(str(new_qty)) - current.qty,
            current.order_type,
            limit_price=kwargs.get("limit_price") or current.limit_price,
            stop_price=kwargs.get("stop_price") or current.stop_price,
            strategy=current.strategy,
            client_order_id=f"{client_order_id}-increase",
            client_name=current.client_name,
        )

    def _refuse_if_halted(self, client: str | None) -> None:
        for state in controls.states(client):
            if state.state is TradingState.HALTED:
                raise OrderRefused(
                    Rule.HALTED,
                    f"trading is halted for {state.label}",
                    client=client,
                    strategy="",
                )

    # ---- facts ------------------------------------------------------------------------------
    def client_of(self, request: OrderRequest) -> str | None:
        """The order's client: named on the order, else this process's, else the recorder's."""
        return request.client_name or current_client() or self._recorder_client()

    def _recorder_client(self) -> str | None:
        from quantstrip.brokers.recorder import Recorder

        for callback in self.broker._subscribers:
            owner = getattr(callback, "__self__", callback)
            if isinstance(owner, Recorder) and owner.client_name:
                return owner.client_name
        return None

    def check(self, request: OrderRequest) -> None:
        client = self.client_of(request)
        settings = risk_settings()
        limits = effective_limits(settings.limits, settings.clients.get(client or ""))
        states = controls.states(client)
        if not states and limits == NO_LIMITS:
            return  # nothing to check: no ledger reads on the order path
        facts = self.facts(request, client, limits, settings, states)
        refusal = check(facts, limits)
        if refusal is not None:
            record_refusal(self.broker, refusal, request)
            raise refusal

    def facts(
        self,
        request: OrderRequest,
        client: str | None,
        limits: RiskLimits,
        settings: RiskSettings,
        states: tuple[ScopeState, ...] = (),
    ) -> OrderFacts:
        broker = self.broker
        now = utc(broker.market_time())
        account = str(getattr(broker, "account", "") or "")
        base = {
            "client": client,
            "strategy": request.strategy,
            "account": account,
            "symbol": request.instrument.symbol,
            "side": request.side,
            "qty": request.qty,
            "multiplier": request.instrument.multiplier,
            "states": states,
            "orders_last_minute": self._orders_last_minute(client, now),
        }
        ledger = broker.ledger()
        conn = ledger.conn if ledger is not None else None
        instrument = exposure.instrument_id(conn, request.instrument) if conn else None
        strategy = exposure.strategy_id(conn, request.strategy) if conn else None
        position, working = self._exposure(conn, request, strategy, instrument)
        price, source = order_price(self.broker, request, conn, instrument, now, settings)
        base.update(
            position=position,
            working_buy=working.buy,
            working_sell=working.sell,
            price=price,
            price_source=source,
        )
        needs_day = (
            limits.max_daily_loss_strategy is not None or limits.max_daily_loss_account is not None
        )
        if needs_day:
            start = day_start(now, settings.zone_for(account))

            def fresh(instrument_id: int) -> Decimal | None:
                return fresh_price(self.broker, conn, instrument_id, now, settings)

            if conn is None:
                unknown = DayLoss(None, "this broker records into no database")
                base.update(day_strategy=unknown, day_account=unknown)
            else:
                base["day_strategy"] = (
                    exposure.day_pnl(conn, day_start=start, fresh_price=fresh, strategy=strategy)
                    if strategy is not None
                    else DayLoss(Decimal(0))
                )
                base["day_account"] = exposure.day_pnl(
                    conn, day_start=start, fresh_price=fresh, account=account
                )
        return OrderFacts(**base)  # type: ignore[arg-type]

    def _exposure(
        self,
        conn: sqlite3.Connection | None,
        request: OrderRequest,
        strategy: int | None,
        instrument: int | None,
    ) -> tuple[Decimal, exposure.Working]:
        name = self.broker.name
        if conn is not None:
            if strategy is None or instrument is None:
                return Decimal(0), exposure.Working(Decimal(0), Decimal(0))
            return (
                exposure.position(conn, strategy, instrument, name),
                exposure.working(conn, strategy, instrument, name),
            )
        # No ledger: the broker's own account position and open orders.
        symbol = request.instrument.symbol
        held = sum(
            (p.qty for p in self.broker.positions() if p.instrument.symbol == symbol), Decimal(0)
        )
        buy = sell = Decimal(0)
        for order in self.broker.open_orders():
            if order.instrument.symbol == symbol and order.strategy == request.strategy:
                if order.side == "BUY":
                    buy += order.qty
                else:
                    sell += order.qty
        return held, exposure.Working(buy, sell)

    # ---- order rate -----------------------------------------------------------------------------
    def _orders_last_minute(self, client: str | None, now: datetime) -> int:
        """Orders of the client placed within the minute before `now` (the broker's clock: a
        backtest counts in simulated time, and a clock set back does not count the future)."""
        with _recent_lock:
            return sum(1 for t in _recent[client or ""] if now - RATE_WINDOW < t <= now)

    def _count(self, request: OrderRequest) -> None:
        client = self.client_of(request)
        now = utc(self.broker.market_time())
        with _recent_lock:
            times = _recent[client or ""]
            times.append(now)
            while times and (now - times[0] >= RATE_WINDOW or times[0] > now):
                times.popleft()  # keep one window, not every order


def reset_order_counts() -> None:
    """Forget the orders counted for the rate limit (tests reuse client names in one process)."""
    with _recent_lock:
        _recent.clear()
