"""Pre-trade rules as pure functions of what the guard gathered about one order.

Kept free of I/O so every rule is tested on its own (including with hypothesis) and the guard
only gathers facts. Conventions:
- An **exit** only reduces a position: opposite to the strategy's position and no larger than
  what is left to close once the exits already working are counted. Everything else (opening,
  adding, flipping) is an **entry**.
- Exits pass every limit and stop-new-entries; only a halt refuses them (flatten's own orders
  bypass the guard).
- The order rate counts every order, exits too: it exists to stop a runaway loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

from quantstrip.errors import QuantstripError

if TYPE_CHECKING:  # the dashboard's pages read trading states from here without pydantic
    from quantstrip.settings_models import RiskLimits


class TradingState(StrEnum):
    """What the operator allows, per client or for everything."""

    ACTIVE = "active"
    STOP_ENTRIES = "stop_entries"
    HALTED = "halted"


class Rule(StrEnum):
    HALTED = "halted"
    STOP_ENTRIES = "stop_entries"
    MAX_POSITION = "max_position"
    MAX_ORDER_NOTIONAL = "max_order_notional"
    MAX_DAILY_LOSS_STRATEGY = "max_daily_loss_strategy"
    MAX_DAILY_LOSS_ACCOUNT = "max_daily_loss_account"
    MAX_ORDERS_PER_MINUTE = "max_orders_per_minute"


class OrderRefused(QuantstripError):
    """An order the risk layer refused before it reached the broker. `rule` says which check,
    `reason` says why in words; nothing was sent."""

    def __init__(self, rule: Rule, reason: str, *, client: str | None, strategy: str) -> None:
        self.rule = rule
        self.reason = reason
        self.client = client
        self.strategy = strategy
        super().__init__(f"order refused by risk ({rule.value}): {reason}")


@dataclass(frozen=True)
class ScopeState:
    scope: str  # '*' or a client name
    state: TradingState
    reason: str = ""

    @property
    def label(self) -> str:
        return "all clients" if self.scope == "*" else f"client {self.scope}"


@dataclass(frozen=True)
class DayLoss:
    """The day's PnL of a strategy or an account, or why it could not be computed."""

    pnl: Decimal | None
    unknown_reason: str = ""


@dataclass(frozen=True)
class OrderFacts:
    client: str | None
    strategy: str
    account: str
    symbol: str
    side: str  # BUY or SELL
    qty: Decimal
    multiplier: Decimal
    position: Decimal  # the strategy's signed filled position in the instrument
    working_buy: Decimal = Decimal(0)  # remaining qty of the strategy's working orders
    working_sell: Decimal = Decimal(0)
    price: Decimal | None = None  # the order's own price, or a fresh mark for a market order
    price_source: str = ""
    states: tuple[ScopeState, ...] = ()
    orders_last_minute: int = 0
    day_strategy: DayLoss = field(default_factory=lambda: DayLoss(Decimal(0)))
    day_account: DayLoss = field(default_factory=lambda: DayLoss(Decimal(0)))

    @property
    def signed_qty(self) -> Decimal:
        return self.qty if self.side == "BUY" else -self.qty

    @property
    def describe(self) -> str:
        return f"{self.side} {self.qty:f} {self.symbol} for {self.strategy}"


def is_exit(facts: OrderFacts) -> bool:
    """Whether the order only reduces the strategy's position (see the module's conventions)."""
    position = facts.position
    if position == 0 or (position > 0) == (facts.side == "BUY"):
        return False
    # Exits already working on this side would close part of the position first.
    already_closing = facts.working_sell if position > 0 else facts.working_buy
    return facts.qty <= abs(position) - already_closing


def effective_limits(global_limits: RiskLimits, client_limits: RiskLimits | None) -> RiskLimits:
    """Both sets apply: where both set a limit, the stricter one holds."""
    from quantstrip.settings_models import RiskLimits

    if client_limits is None:
        return global_limits
    merged: dict[str, object] = {}
    for name in RiskLimits.model_fields:
        a, b = getattr(global_limits, name), getattr(client_limits, name)
        if name == "max_position_by_symbol":
            symbols = {**a}
            for symbol, qty in b.items():
                symbols[symbol] = min(qty, symbols[symbol]) if symbol in symbols else qty
            merged[name] = symbols
        elif a is None or b is None:
            merged[name] = a if b is None else b
        else:
            merged[name] = min(a, b)
    return RiskLimits.model_validate(merged)


def _refuse(facts: OrderFacts, rule: Rule, reason: str) -> OrderRefused:
    where = f" (client {facts.client})" if facts.client else ""
    return OrderRefused(
        rule, f"{facts.describe}{where}: {reason}", client=facts.client, strategy=facts.strategy
    )


def check(facts: OrderFacts, limits: RiskLimits) -> OrderRefused | None:
    """The first rule the order breaks, or None when it may go to the broker."""
    for state in facts.states:
        if state.state is TradingState.HALTED:
            why = f": {state.reason}" if state.reason else ""
            return _refuse(facts, Rule.HALTED, f"trading is halted for {state.label}{why}")
    per_minute = limits.max_orders_per_minute
    if per_minute is not None and facts.orders_last_minute >= per_minute:
        return _refuse(
            facts,
            Rule.MAX_ORDERS_PER_MINUTE,
            f"{facts.orders_last_minute} orders in the last minute, limit "
            f"{limits.max_orders_per_minute}",
        )
    if is_exit(facts):
        return None
    for state in facts.states:
        if state.state is TradingState.STOP_ENTRIES:
            why = f": {state.reason}" if state.reason else ""
            return _refuse(
                facts,
                Rule.STOP_ENTRIES,
                f"new entries are stopped for {state.label}{why} (orders that reduce a "
                "position still pass)",
            )
    refusal = _position(facts, limits)
    refusal = refusal or _notional(facts, limits)
    refusal = refusal or _day_loss(
        facts, Rule.MAX_DAILY_LOSS_STRATEGY, limits.max_daily_loss_strategy, facts.day_strategy
    )
    return refusal or _day_loss(
        facts, Rule.MAX_DAILY_LOSS_ACCOUNT, limits.max_daily_loss_account, facts.day_account
    )


def _position(facts: OrderFacts, limits: RiskLimits) -> OrderRefused | None:
    limit = limits.max_position_by_symbol.get(facts.symbol, limits.max_position)
    if limit is None:
        return None
    # Worst case: every working order on the order's side fills, then this one.
    if facts.side == "BUY":
        projected = facts.position + facts.working_buy + facts.qty
    else:
        projected = facts.position - facts.working_sell - facts.qty
    if abs(projected) <= limit:
        return None
    return _refuse(
        facts,
        Rule.MAX_POSITION,
        f"position would reach {projected:f} (held {facts.position:f}, working buy "
        f"{facts.working_buy:f} / sell {facts.working_sell:f}), limit {limit:f}",
    )


def _notional(facts: OrderFacts, limits: RiskLimits) -> OrderRefused | None:
    limit = limits.max_order_notional
    if limit is None:
        return None
    if facts.price is None:
        return _refuse(
            facts,
            Rule.MAX_ORDER_NOTIONAL,
            f"cannot value the order against the {limit:f} limit: {facts.price_source}",
        )
    notional = facts.qty * facts.price * facts.multiplier
    if notional <= limit:
        return None
    return _refuse(
        facts,
        Rule.MAX_ORDER_NOTIONAL,
        f"notional {notional:,.2f} at {facts.price:f} ({facts.price_source}) exceeds the "
        f"limit {limit:,.2f}",
    )


def _day_loss(
    facts: OrderFacts, rule: Rule, limit: Decimal | None, day: DayLoss
) -> OrderRefused | None:
    if limit is None:
        return None
    scope = (
        f"strategy {facts.strategy}"
        if rule is Rule.MAX_DAILY_LOSS_STRATEGY
        else (f"account {facts.account}")
    )
    if day.pnl is None:
        return _refuse(
            facts, rule, f"the day's loss of {scope} cannot be checked: {day.unknown_reason}"
        )
    if day.pnl > -limit:
        return None
    return _refuse(
        facts, rule, f"the day's PnL of {scope} is {day.pnl:,.2f}, loss limit {limit:,.2f}"
    )
