"""Fills and commissions: stored once per broker exec id, corrections supersede, never edit.

`record_execution` applies each new fill to its position in the same transaction, so a crash can
never leave an execution without its position event (or the reverse).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from quantstrip.db.connection import transaction
from quantstrip.db.position_rows import PositionBatch
from quantstrip.db.records import Commission, Execution, Instrument, Order
from quantstrip.db.units import Number, from_micros, now_text, utc_text
from quantstrip.db.validate import (
    currency_code,
    fx_rate_nanos,
    micros,
    normalise_side,
    notional_micros,
    optional_micros,
    positive_micros,
    price_micros,
)
from quantstrip.errors import ConflictError, ValidationError

log = logging.getLogger(__name__)

_KNOWN = (
    "SELECT a.id, e.id, EXISTS (SELECT 1 FROM commissions c WHERE c.broker = a.broker "
    "AND c.exec_id = ?1) FROM accounts a LEFT JOIN executions e ON e.broker = a.broker "
    "AND e.account_id = a.id AND e.exec_id = ?1 WHERE a.broker = ?2 AND a.account_code = ?3"
)
_INSERT_EXECUTION = (
    "INSERT INTO executions (broker, account_id, exec_id, base_exec_id, correction_number, "
    "superseded_by, order_id, strategy_id, instrument_id, side, qty_micros, price_micros, "
    "exec_time, liquidity, exchange, recorded_at, currency, fx_rate_to_base_nanos) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True)
class ExecutionInput:
    """A fill as a broker reports it, in natural units.

    `base_exec_id` / `correction_number`: the fill group and version the broker adapter read in
    the broker's ids (see `ExecutionEvent`); absent, the fill is a group of its own.
    """

    broker: str
    account: str
    exec_id: str
    strategy: str | int
    instrument_id: int
    side: str
    qty: Number
    price: Number
    exec_time: Any
    order_id: int | None = None
    client_order_id: str | None = None
    base_exec_id: str | None = None
    correction_number: int | None = None
    liquidity: str = ""
    exchange: str = ""
    # The fill's currency (None: the instrument's, which it must equal; stored either way) and
    # the broker's rate from it to the account's base currency, when the broker gives one (IB
    # Flex fxRateToBase; else the fx_rates table applies, never a guess).
    currency: str | None = None
    fx_rate_to_base: Number | None = None


@dataclass(frozen=True)
class ExecutionResult:
    execution: Execution
    created: bool
    superseded: Execution | None = None


class ExecutionLedger:
    """Part of `Database`: executions and commissions, idempotent on the broker's ids."""

    conn: sqlite3.Connection

    if TYPE_CHECKING:  # provided by ReferenceData, OrderBook and PositionStore

        def instrument(self, instrument_id: int) -> Instrument: ...
        def strategy_id(self, strategy: str | int) -> int: ...
        def ensure_account(self, broker: str, account_code: str, **extra: Any) -> int: ...
        def strategy_and_method(self, strategy: str | int) -> tuple[int, str]: ...
        def order_by_client_id(self, client_order_id: str) -> Order | None: ...
        def _apply_fill(
            self, execution: Execution, method: str, multiplier: int, batch: PositionBatch
        ) -> None: ...
        def _supersede(
            self,
            prior: Execution,
            execution: Execution,
            method: str,
            mult: int,
            batch: PositionBatch,
        ) -> None: ...
        def _flush(self, batch: PositionBatch) -> None: ...

    def _validate_execution(
        self, fill: ExecutionInput, instruments: dict[int, Instrument] | None = None
    ) -> dict[str, Any]:
        if not fill.broker:
            raise ValidationError("broker", "must not be empty")
        if not fill.exec_id or not isinstance(fill.exec_id, str):
            raise ValidationError("exec_id", "must be a non-empty string")
        if not fill.account:
            raise ValidationError("account", "must not be empty")
        side = normalise_side(fill.side)
        qty_m = positive_micros(fill.qty, "qty")
        px_m = price_micros(fill.price, "price")
        instrument = (instruments or {}).get(fill.instrument_id) or self.instrument(
            fill.instrument_id
        )
        if instruments is not None:
            instruments[fill.instrument_id] = instrument
        notional_micros(qty_m, px_m, instrument.multiplier_micros)
        base = fill.base_exec_id or fill.exec_id
        correction = fill.correction_number if fill.base_exec_id else 0
        if isinstance(correction, bool) or not isinstance(correction, int | None):
            raise ValidationError("correction_number", f"expected an integer, got {correction!r}")
        currency = instrument.currency if fill.currency is None else currency_code(fill.currency)
        if currency != instrument.currency:
            raise ValidationError(
                "currency",
                f"the fill is in {currency} but instrument {instrument.id} ({instrument.symbol}) "
                f"trades in {instrument.currency}",
            )
        return {
            "currency": currency,
            "fx_rate_to_base_nanos": fx_rate_nanos(fill.fx_rate_to_base),
            "side": side,
            "qty_micros": qty_m,
            "price_micros": px_m,
            "instrument": instrument,
            "exec_time": utc_text(fill.exec_time, "exec_time"),
            "base_exec_id": base,
            "correction_number": int(correction or 0),
        }

    def record_execution(self, fill: ExecutionInput) -> ExecutionResult:
        """Store a fill once and apply it to its position, atomically.

        A repeated exec id returns the stored row untouched (`created=False`); one with other
        content (side, quantity, price, instrument) raises `ConflictError`. A higher correction
        number of the same base exec id supersedes the earlier fill and the position is rebuilt;
        a lower one (arriving late) is stored as already superseded.
        """
        return self.record_executions([fill])[0]

    def record_executions(self, fills: Sequence[ExecutionInput]) -> list[ExecutionResult]:
        """Many fills in one transaction (all or none), each validated before any write.

        Each position a batch touches is read once and written once; what the batch holds in
        memory lives only inside its transaction."""
        instruments: dict[int, Instrument] = {}  # read once per call (rows never change)
        checked = [self._validate_execution(f, instruments) for f in fills]
        with transaction(self.conn):
            batch = PositionBatch(recorded_at=now_text())  # one moment for the transaction
            results = [
                self._record_execution_locked(f, c, batch)
                for f, c in zip(fills, checked, strict=True)
            ]
            self._flush(batch)
            return results

    def _record_execution_locked(
        self, fill: ExecutionInput, c: dict[str, Any], batch: PositionBatch
    ) -> ExecutionResult:
        conn = self.conn
        # One look-up for the account, a stored fill with this exec id, and a commission that
        # arrived before its fill.
        known = conn.execute(_KNOWN, (fill.exec_id, fill.broker, fill.account)).fetchone()
        if known is None:
            account_id = self.ensure_account(fill.broker, fill.account)
            existing_id = None
            early_commission = conn.execute(
                "SELECT 1 FROM commissions WHERE broker = ? AND exec_id = ?",
                (fill.broker, fill.exec_id),
            ).fetchone()
        else:
            account_id, existing_id, early_commission = known
        if existing_id is not None:
            stored = self._execution(existing_id)
            _check_repeat(stored, fill, c)
            return ExecutionResult(self._learn_rate(stored, c), created=False)
        strategy = batch.strategies.get(fill.strategy)
        if strategy is None:
            strategy = batch.strategies[fill.strategy] = self.strategy_and_method(fill.strategy)
        strategy_id, method = strategy
        order_id = fill.order_id
        if order_id is None and fill.client_order_id:
            order = self.order_by_client_id(fill.client_order_id)
            order_id = order.id if order else None
        prior = None
        if c["base_exec_id"] != fill.exec_id:
            active = self.conn.execute(
                "SELECT * FROM executions WHERE broker = ? AND account_id = ? "
                "AND base_exec_id = ? AND base_exec_id <> exec_id AND superseded_by IS NULL",
                (fill.broker, account_id, c["base_exec_id"]),
            ).fetchone()
            prior = Execution.from_row(active) if active else None
            if prior is not None and not _same_fill(prior, fill.instrument_id, c["side"], order_id):
                log.warning(
                    "%s exec id %s shares its correction group with exec id %s but is not the "
                    "same fill (instrument, side or order differ): recorded as a fill of its own",
                    fill.broker,
                    fill.exec_id,
                    prior.exec_id,
                )
                c = {**c, "base_exec_id": fill.exec_id, "correction_number": 0}
                prior = None
        late_version = prior is not None and prior.correction_number >= c["correction_number"]
        row = {
            "broker": fill.broker,
            "account_id": account_id,
            "exec_id": fill.exec_id,
            "base_exec_id": c["base_exec_id"],
            "correction_number": c["correction_number"],
            "superseded_by": prior.id if late_version and prior else None,
            "order_id": order_id,
            "strategy_id": strategy_id,
            "instrument_id": fill.instrument_id,
            "side": c["side"],
            "qty_micros": c["qty_micros"],
            "price_micros": c["price_micros"],
            "exec_time": c["exec_time"],
            "liquidity": fill.liquidity or "",
            "exchange": fill.exchange or "",
            "recorded_at": batch.recorded_at,
            "currency": c["currency"],
            "fx_rate_to_base_nanos": c["fx_rate_to_base_nanos"],
        }
        cursor = conn.execute(_INSERT_EXECUTION, tuple(row.values()))
        execution = Execution(id=int(cursor.lastrowid or 0), **row)
        if early_commission:
            conn.execute(
                "UPDATE commissions SET execution_id = ? WHERE broker = ? AND exec_id = ? "
                "AND execution_id IS NULL",
                (execution.id, fill.broker, fill.exec_id),
            )
        multiplier = c["instrument"].multiplier_micros
        if late_version:
            return ExecutionResult(execution, created=True)
        if prior is not None:
            self.conn.execute(
                "UPDATE executions SET superseded_by = ? WHERE id = ?", (execution.id, prior.id)
            )
            self._supersede(prior, execution, method, multiplier, batch)
            return ExecutionResult(execution, created=True, superseded=self._execution(prior.id))
        self._apply_fill(execution, method, multiplier, batch)
        return ExecutionResult(execution, created=True)

    def _learn_rate(self, stored: Execution, c: dict[str, Any]) -> Execution:
        """A repeat that brings the FX rate the first report lacked (the live fill, then the
        Flex statement) completes the stored fill; a different rate is a conflict."""
        rate = c["fx_rate_to_base_nanos"]
        if rate is None or rate == stored.fx_rate_to_base_nanos:
            return stored
        if stored.fx_rate_to_base_nanos is not None:
            message = (
                f"{stored.broker} exec id {stored.exec_id} is stored with an FX rate to base of "
                f"{stored.fx_rate_to_base_nanos / 1e9}; the broker now sends {rate / 1e9}: refused "
                "(the stored rate stands)"
            )
            log.error("conflict: %s", message)
            raise ConflictError(message)
        self.conn.execute(
            "UPDATE executions SET fx_rate_to_base_nanos = ? WHERE id = ?", (rate, stored.id)
        )
        return self._execution(stored.id)

    def _execution(self, execution_id: int) -> Execution:
        row = self.conn.execute("SELECT * FROM executions WHERE id = ?", (execution_id,)).fetchone()
        return Execution.from_row(row)

    def execution_by_exec_id(self, broker: str, exec_id: str) -> Execution | None:
        row = self.conn.execute(
            "SELECT * FROM executions WHERE broker = ? AND exec_id = ? ORDER BY id LIMIT 1",
            (broker, exec_id),
        ).fetchone()
        return Execution.from_row(row) if row else None

    def record_commission(
        self,
        *,
        broker: str,
        exec_id: str,
        commission: Number,
        currency: str = "USD",
        broker_realized_pnl: Number | None = None,
    ) -> Commission:
        """Store the commission of one fill, before or after the fill itself.

        An exact repeat is a no-op; a repeat with another amount or currency raises
        `ConflictError` (and is logged): the stored commission stands."""
        if not exec_id:
            raise ValidationError("exec_id", "must not be empty")
        commission_m = micros(commission, "commission")
        # A broker's own "no value" sentinel is its adapter's to map to None (brokers/).
        pnl_m = optional_micros(broker_realized_pnl, "broker_realized_pnl")
        currency = currency_code(currency or "USD")
        with transaction(self.conn):
            row = self.conn.execute(
                "SELECT * FROM commissions WHERE broker = ? AND exec_id = ?", (broker, exec_id)
            ).fetchone()
            if row is not None:
                stored = Commission.from_row(row)
                if (stored.commission_micros, stored.currency) != (commission_m, currency):
                    message = (
                        f"commission of {broker} exec id {exec_id} is already stored as "
                        f"{stored.commission} {stored.currency}; a repeat now says "
                        f"{from_micros(commission_m)} {currency}: refused (the stored one stands)"
                    )
                    log.error("conflict: %s", message)
                    raise ConflictError(message)
                return stored
            execution = self.execution_by_exec_id(broker, exec_id)
            self.conn.execute(
                "INSERT INTO commissions (broker, exec_id, execution_id, "
                "commission_micros, currency, broker_realized_pnl_micros, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    broker,
                    exec_id,
                    execution.id if execution else None,
                    commission_m,
                    currency,
                    pnl_m,
                    now_text(),
                ),
            )
            row = self.conn.execute(
                "SELECT * FROM commissions WHERE broker = ? AND exec_id = ?", (broker, exec_id)
            ).fetchone()
        return Commission.from_row(row)


def _check_repeat(stored: Execution, fill: ExecutionInput, checked: dict[str, Any]) -> None:
    """An exec id seen again must describe the same fill; other content is a conflict."""
    theirs = (fill.instrument_id, checked["side"], checked["qty_micros"], checked["price_micros"])
    ours = (stored.instrument_id, stored.side, stored.qty_micros, stored.price_micros)
    if theirs == ours:
        return
    message = (
        f"{fill.broker} exec id {fill.exec_id} on account {fill.account} is already stored as "
        f"{stored.side} {stored.qty} @ {stored.price} of instrument {stored.instrument_id} "
        f"(execution {stored.id}); the broker now sends {checked['side']} "
        f"{from_micros(checked['qty_micros'])} @ {from_micros(checked['price_micros'])} of "
        f"instrument {fill.instrument_id}: refused (the stored fill stands)"
    )
    log.error("conflict: %s", message)
    raise ConflictError(message)


def _same_fill(prior: Execution, instrument_id: int, side: str, order_id: int | None) -> bool:
    """The broker's rule for a correction: same instrument, side and order (account and group
    are already the same); an order id known on one side only does not tell them apart."""
    same_order = prior.order_id is None or order_id is None or prior.order_id == order_id
    return prior.instrument_id == instrument_id and prior.side == side and same_order
