"""Recorder: the one path from canonical broker events into the lifecycle database.

Idempotent by construction: executions are keyed by the broker's exec id (a replay after a
reconnect, or a duplicate delivery, is a no-op in the database), commissions by exec id (before
or after their fill), and order status repeats are dropped. Every fill is attributed to a
strategy: its order's, else the one the event names, else `unattributed` (never dropped). A
strategy name the database does not know (the production record creates none implicitly) is
alerted and the fill kept under `unattributed`.

Nothing the broker reported is lost when the database cannot take it: events that fail to store
go to a durable journal under the data directory and are replayed (`brokers/replay.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from quantstrip.brokers.conversions import (
    conversion_time,
    is_conversion,
    record_conversion,
    record_conversion_fee,
)
from quantstrip.brokers.event_journal import EventJournal
from quantstrip.brokers.events import (
    AccountValueEvent,
    BrokerEvent,
    CashEvent,
    CommissionEvent,
    ErrorEvent,
    ExecutionEvent,
    InstrumentSpec,
    OrderModifiedEvent,
    OrderPlacedEvent,
    OrderStatusEvent,
    PositionEvent,
)
from quantstrip.brokers.marks import MarkEvent, store_mark
from quantstrip.brokers.replay import JournaledDelivery, alert_in_background
from quantstrip.db.handler import Database, ExecutionInput, ExecutionResult
from quantstrip.db.records import Order
from quantstrip.db.validate import currency_code
from quantstrip.errors import ConflictError, ValidationError
from quantstrip.paths import workspace

log = logging.getLogger(__name__)

UNATTRIBUTED = "unattributed"

# Events that write to the database (the others are kept in memory or only logged).
STORED_EVENTS = (
    ExecutionEvent,
    CommissionEvent,
    OrderPlacedEvent,
    OrderStatusEvent,
    OrderModifiedEvent,
    AccountValueEvent,
    CashEvent,
    MarkEvent,
)


def journal_path(client_name: str | None, db: Database) -> Path:
    """Where a recorder keeps the events its database could not take: one file per client and
    database, under the data directory."""
    return workspace().home / "journal" / f"{client_name or 'recorder'}-{db.path.stem}.jsonl"


class Recorder:
    def __init__(
        self,
        db: Database,
        *,
        unattributed_strategy: str = UNATTRIBUTED,
        client_name: str | None = None,
        on_error: Callable[[ErrorEvent], None] | None = None,
        journal: EventJournal | None = None,
        alert: Callable[[str], None] | None = None,
        replay_interval_s: float = 30.0,
    ) -> None:
        """`alert` receives a message when events wait in the journal or are refused (default:
        an e-mail alert of `client_name`); `replay_interval_s`: how often waiting events are
        retried in the background."""
        self.db = db
        self.unattributed_strategy = unattributed_strategy
        self.client_name = client_name
        self.on_error = on_error
        self.broker_positions: dict[tuple[str, str, str], PositionEvent] = {}
        self._base_conflicts: set[tuple[str, str, str]] = set()  # alerted once each
        self.journal = journal or EventJournal(journal_path(client_name, db))
        self.alert = alert or (
            lambda message: alert_in_background(client_name or "recorder", message)
        )
        self._delivery = JournaledDelivery(
            self.handle, self.journal, alert=self.alert, replay_interval_s=replay_interval_s
        )

    def __call__(self, event: BrokerEvent) -> None:
        """The broker's subscriber: store the event, or journal it (never lost, never raised
        into the broker's event thread for a database failure)."""
        if isinstance(event, STORED_EVENTS):
            self._delivery.deliver(event)
        else:
            self.handle(event)

    def replay(self) -> int:
        """Store the events waiting in the journal now; returns how many were stored."""
        return self._delivery.replay()

    def close(self) -> None:
        """Stop the background replayer (what still waits stays in the journal)."""
        self._delivery.stop()

    def _strategy(self, name: str, what: str) -> str:
        """`name` if the database knows it or may create it, else the unattributed strategy
        (alerted: a fill or order is never dropped for naming a strategy nobody created)."""
        if self.db.create_strategies or self.db.strategy(name) is not None:
            return name
        message = (
            f"{what} names strategy {name!r}, which this database does not know (create it with "
            f"ensure_strategy): recorded under {self.unattributed_strategy!r}"
        )
        log.error(message)
        self.alert(message)
        return self._unattributed()

    def _learn_base_currency(self, event: AccountValueEvent) -> None:
        """The currency a broker states an account's net liquidation in is the account's base
        (IB sends it in the base; 'BASE' or '' when it does not know: nothing changes), so a
        live account's base figures need not wait for a statement. A base that contradicts
        the rates its fills already carry is alerted once and left as it is; the snapshot is
        still stored."""
        try:
            code = currency_code(event.currency)
        except ValidationError:
            return
        account = self.db.account(event.broker, event.account)
        if account is not None and account.base_currency == code:
            return
        try:
            self.db.set_base_currency(event.broker, event.account, code)
        except ConflictError as exc:
            key = (event.broker, event.account, code)
            if key not in self._base_conflicts:
                self._base_conflicts.add(key)
                self.alert(str(exc))

    def _unattributed(self) -> str:
        """The strategy of fills of unknown origin, created explicitly when first needed."""
        self.db.ensure_strategy(self.unattributed_strategy)
        return self.unattributed_strategy

    def handle(self, event: BrokerEvent) -> object:
        if isinstance(event, ExecutionEvent):
            if is_conversion(event):  # cash between currencies, never a position
                return record_conversion(self.db, event)
            return self._execution(event)
        if isinstance(event, CommissionEvent):
            conversion = conversion_time(self.db, event.broker, event.exec_id)
            if conversion is not None:
                return record_conversion_fee(self.db, event, *conversion)
            return self.db.record_commission(
                broker=event.broker,
                exec_id=event.exec_id,
                commission=event.commission,
                currency=event.currency,
                broker_realized_pnl=event.realized_pnl,
            )
        if isinstance(event, OrderPlacedEvent):
            return self._order_placed(event)
        if isinstance(event, OrderStatusEvent):
            return self._order_status(event)
        if isinstance(event, OrderModifiedEvent):
            return self._order_modified(event)
        if isinstance(event, CashEvent):
            return self.db.record_cash_event(
                broker=event.broker,
                account=event.account,
                broker_txn_id=event.txn_id,
                kind=event.kind,
                currency=event.currency,
                amount=event.amount,
                event_time=event.time,
                fx_rate_to_base=event.fx_rate_to_base,
                instrument_id=(
                    self.instrument_id(event.broker, event.instrument) if event.instrument else None
                ),
                description=event.description,
            )[0]
        if isinstance(event, AccountValueEvent):
            self._learn_base_currency(event)
            return self.db.record_account_snapshot(
                broker=event.broker,
                account=event.account,
                net_liquidation=event.net_liquidation,
                cash=event.cash,
                currency=event.currency,
                snapshot_time=event.time,
            )
        if isinstance(event, PositionEvent):
            key = (event.broker, event.account, event.instrument.symbol)
            self.broker_positions[key] = event
            return event
        if isinstance(event, MarkEvent):
            return store_mark(
                self.db.conn, self.instrument_id(event.broker, event.instrument), event
            )
        if isinstance(event, ErrorEvent):
            log.warning("broker %s error %s: %s", event.broker, event.code, event.message)
            if self.on_error:
                self.on_error(event)
            return event
        raise TypeError(f"not a broker event: {event!r}")

    def instrument_id(self, broker: str, spec: InstrumentSpec) -> int:
        """The instrument's id, read in the database each time (never cached across a
        rollback)."""
        return self.db.ensure_instrument(
            spec.symbol,
            sec_type=spec.sec_type,
            exchange=spec.exchange,
            currency=spec.currency,
            multiplier=spec.multiplier,
            primary_exchange=spec.primary_exchange,
            expiry=spec.expiry,
            strike=spec.strike,
            option_right=spec.option_right,
            broker=broker if spec.broker_contract_id else None,
            broker_contract_id=spec.broker_contract_id,
        )

    def _find_order(
        self,
        broker: str,
        client_order_id: str | None,
        perm_id: str | None,
        broker_order_id: str | None,
        broker_client_id: str | None,
    ) -> Order | None:
        if client_order_id:
            order = self.db.order_by_client_id(client_order_id)
            if order is not None:
                return order
        return self.db.find_order(
            broker,
            perm_id=perm_id,
            broker_order_id=broker_order_id,
            broker_client_id=broker_client_id,
        )

    def _order_placed(self, event: OrderPlacedEvent) -> Order:
        request = event.request
        parent_id = None
        if request.parent_client_order_id:
            parent = self.db.order_by_client_id(request.parent_client_order_id)
            parent_id = parent.id if parent else None
        return self.db.record_order(
            client_order_id=request.client_order_id,
            instrument_id=self.instrument_id(event.broker, request.instrument),
            broker=event.broker,
            order_type=request.order_type,
            side=request.side,
            qty=request.qty,
            strategy=self._strategy(request.strategy, f"order {request.client_order_id}"),
            account=event.account,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
            tif=request.tif,
            status="PendingSubmit",
            broker_order_id=event.broker_order_id,
            broker_client_id=event.broker_client_id,
            perm_id=event.perm_id,
            parent_order_id=parent_id,
            oca_group=request.oca_group,
            client_name=request.client_name or self.client_name,
            created_at=event.time,
            trail_amount=request.trail_amount,
            trail_percent=request.trail_percent,
            good_till=request.good_till,
        )

    def _order_modified(self, event: OrderModifiedEvent) -> Order | None:
        order = self.db.order_by_client_id(event.client_order_id)
        if order is None:
            log.info("modify of an order this workspace did not place: ignored")
            return None
        terms = {
            name: getattr(event, name)
            for name in ("qty", "limit_price", "stop_price", "trail_amount", "trail_percent")
            if getattr(event, name) is not None
        }
        return self.db.update_order(order.id, **terms) if terms else order

    def _order_status(self, event: OrderStatusEvent) -> Order | None:
        order = self._find_order(
            event.broker,
            event.client_order_id,
            event.perm_id,
            event.broker_order_id,
            event.broker_client_id,
        )
        if order is None:
            log.info("status %s for an order this workspace did not place: ignored", event.status)
            return None
        if event.perm_id and order.perm_id != str(event.perm_id):
            order = self.db.update_order(order.id, perm_id=event.perm_id)
        return self.db.update_order_status(
            order.id,
            event.status,
            filled_qty=event.filled,
            remaining_qty=event.remaining,
            avg_fill_price=event.avg_fill_price,
            message=event.message,
            event_time=event.time,
        )

    def _execution(self, event: ExecutionEvent) -> ExecutionResult:
        order = self._find_order(
            event.broker,
            event.client_order_id,
            event.perm_id,
            event.broker_order_id,
            event.broker_client_id,
        )
        if order is not None and order.strategy_id is not None:
            strategy: str | int = order.strategy_id
        elif event.strategy:
            strategy = self._strategy(event.strategy, f"fill {event.exec_id}")
        elif event.client_order_id and self.db.strategy(event.client_order_id) is not None:
            # An order placed outside Quantstrip (in TWS, by another program) whose reference
            # names a strategy: the trader attributed it.
            strategy = event.client_order_id
        else:
            strategy = self._unattributed()
        return self.db.record_execution(
            ExecutionInput(
                broker=event.broker,
                account=event.account,
                exec_id=event.exec_id,
                strategy=strategy,
                instrument_id=self.instrument_id(event.broker, event.instrument),
                side=event.side,
                qty=event.qty,
                price=event.price,
                exec_time=event.time,
                order_id=order.id if order else None,
                liquidity=event.liquidity,
                exchange=event.exchange,
                base_exec_id=event.base_exec_id,
                correction_number=event.correction_number,
                fx_rate_to_base=event.fx_rate_to_base,
            )
        )
