"""Reference data: accounts, strategies and instruments, created on first sight, found by id.

Ids are read inside the transaction that uses them, never cached: a cache filled inside a batch
that then rolls back would hand a later fill an id that no longer exists or that SQLite has
since given to another row (a fill filed under the wrong strategy or account).
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from quantstrip.db.connection import transaction
from quantstrip.db.positions import METHODS
from quantstrip.db.records import Account, Instrument, Strategy
from quantstrip.db.units import Number, now_text
from quantstrip.db.validate import currency_code, micros, positive_micros
from quantstrip.errors import ConflictError, NotFoundError, ValidationError

_INSTRUMENT_BY_KEY = (
    "SELECT id FROM instruments WHERE symbol = ? AND sec_type = ? AND exchange = ? "
    "AND currency = ? AND expiry = ? AND strike_micros = ? AND option_right = ?"
)

log = logging.getLogger(__name__)


class ReferenceData:
    """Part of `Database`: the rows every ledger fact points at."""

    conn: sqlite3.Connection
    # Whether a write naming an unknown strategy creates it (simulation databases) or is refused
    # (the production record: a typo must not become a new strategy). See db_handler.
    create_strategies: bool

    def ensure_account(self, broker: str, account_code: str, **extra: Any) -> int:
        if not account_code:
            raise ValidationError("account", "must not be empty")
        key = (broker, account_code)
        base = currency_code(extra.get("base_currency", "USD"), "base_currency")
        found = self.conn.execute(
            "SELECT id FROM accounts WHERE broker = ? AND account_code = ?", key
        ).fetchone()
        if found is not None:
            return int(found[0])
        with transaction(self.conn):
            self.conn.execute(
                "INSERT OR IGNORE INTO accounts (broker, account_code, name, base_currency, "
                "created_at) VALUES (?, ?, ?, ?, ?)",
                (
                    broker,
                    account_code,
                    extra.get("name"),
                    base,
                    now_text(),
                ),
            )
            row = self.conn.execute(
                "SELECT id FROM accounts WHERE broker = ? AND account_code = ?", key
            ).fetchone()
        return int(row[0])

    def set_base_currency(self, broker: str, account_code: str, currency: str) -> None:
        """The account's base currency (every base figure converts to it), as the broker states
        it (IB: the Flex statement's AccountInformation currency).

        The rates stored with fills are to the base currency of their day: once a fill carries
        one, changing the base is refused (`ConflictError`) rather than silently mixing rates to
        two currencies."""
        code = currency_code(currency, "base_currency")
        account_id = self.ensure_account(broker, account_code, base_currency=code)
        with transaction(self.conn):
            stored = self.conn.execute(
                "SELECT base_currency FROM accounts WHERE id = ?", (account_id,)
            ).fetchone()[0]
            if stored == code:
                return
            rated = self.conn.execute(
                "SELECT COUNT(*) FROM executions WHERE account_id = ? "
                "AND fx_rate_to_base_nanos IS NOT NULL",
                (account_id,),
            ).fetchone()[0]
            if rated:
                message = (
                    f"{broker} account {account_code} has base currency {stored} and {rated} "
                    f"fill(s) stored with a rate to {stored}; changing it to {code} is refused"
                )
                log.error("conflict: %s", message)
                raise ConflictError(message)
            self.conn.execute(
                "UPDATE accounts SET base_currency = ? WHERE id = ?", (code, account_id)
            )

    def ensure_strategy(
        self, name: str, *, position_method: str = "fifo", description: str = ""
    ) -> int:
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("strategy", "name must be a non-empty string")
        if position_method not in METHODS:
            raise ValidationError("position_method", f"must be one of {METHODS}")
        row = self.conn.execute("SELECT id FROM strategies WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return int(row[0])
        with transaction(self.conn):
            self.conn.execute(
                "INSERT OR IGNORE INTO strategies (name, description, position_method, "
                "created_at) VALUES (?, ?, ?, ?)",
                (name, description, position_method, now_text()),
            )
            row = self.conn.execute("SELECT id FROM strategies WHERE name = ?", (name,)).fetchone()
        return int(row[0])

    def strategy_id(self, strategy: str | int) -> int:
        return self.strategy_and_method(strategy)[0]

    def strategy_and_method(self, strategy: str | int) -> tuple[int, str]:
        """A strategy's id and position method, by id or name (see `create_strategies`)."""
        if isinstance(strategy, int) and not isinstance(strategy, bool):
            row = self.conn.execute(
                "SELECT id, position_method FROM strategies WHERE id = ?", (strategy,)
            ).fetchone()
            if row is not None:
                return int(row[0]), row[1]
            raise ValidationError("strategy", f"unknown strategy id {strategy}")
        if isinstance(strategy, str):
            row = self.conn.execute(
                "SELECT id, position_method FROM strategies WHERE name = ?", (strategy,)
            ).fetchone()
            if row is not None:
                return int(row[0]), row[1]
            if self.create_strategies:
                created = self.ensure_strategy(strategy)
                return created, self.conn.execute(
                    "SELECT position_method FROM strategies WHERE id = ?", (created,)
                ).fetchone()[0]
            raise ValidationError(
                "strategy",
                f"unknown strategy {strategy!r}: strategies of this database are created "
                f"explicitly, with ensure_strategy({strategy!r}) (setting "
                "ledger.create_strategies)",
            )
        raise ValidationError("strategy", f"expected a name or id, got {strategy!r}")

    def ensure_instrument(
        self,
        symbol: str,
        *,
        sec_type: str = "STK",
        exchange: str = "SMART",
        currency: str = "USD",
        multiplier: Number = 1,
        primary_exchange: str | None = None,
        local_symbol: str | None = None,
        expiry: str = "",
        strike: Number = 0,
        option_right: str = "",
        broker: str | None = None,
        broker_contract_id: str | int | None = None,
    ) -> int:
        """The id of an instrument, created on first sight; a broker id is linked to it."""
        if not isinstance(symbol, str) or not symbol.strip():
            raise ValidationError("symbol", "must be a non-empty string")
        mult = positive_micros(multiplier, "multiplier")
        strike_m = micros(strike, "strike")
        currency = currency_code(currency)
        key = (symbol, sec_type, exchange, currency, expiry, strike_m, option_right)
        linked = broker and broker_contract_id not in (None, "")
        if linked:
            row = self.conn.execute(
                "SELECT instrument_id FROM instrument_broker_ids "
                "WHERE broker = ? AND broker_contract_id = ?",
                (broker, str(broker_contract_id)),
            ).fetchone()
            if row:
                return int(row[0])
        else:
            row = self.conn.execute(_INSTRUMENT_BY_KEY, key).fetchone()
            if row:
                return int(row[0])
        with transaction(self.conn):
            if linked:
                row = self.conn.execute(
                    "SELECT instrument_id FROM instrument_broker_ids "
                    "WHERE broker = ? AND broker_contract_id = ?",
                    (broker, str(broker_contract_id)),
                ).fetchone()
                if row:
                    return int(row[0])
            self.conn.execute(
                "INSERT OR IGNORE INTO instruments (symbol, sec_type, exchange, currency, expiry, "
                "strike_micros, option_right, multiplier_micros, primary_exchange, local_symbol, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*key, mult, primary_exchange, local_symbol, now_text()),
            )
            instrument_id = int(self.conn.execute(_INSTRUMENT_BY_KEY, key).fetchone()[0])
            if linked:
                self.conn.execute(
                    "INSERT OR IGNORE INTO instrument_broker_ids VALUES (?, ?, ?)",
                    (instrument_id, broker, str(broker_contract_id)),
                )
        return instrument_id

    def instrument(self, instrument_id: int) -> Instrument:
        if isinstance(instrument_id, bool) or not isinstance(instrument_id, int):
            raise ValidationError("instrument_id", f"expected an integer id, got {instrument_id!r}")
        row = self.conn.execute(
            "SELECT * FROM instruments WHERE id = ?", (instrument_id,)
        ).fetchone()
        if row is None:
            raise ValidationError("instrument_id", f"unknown instrument {instrument_id}")
        return Instrument.from_row(row)

    def instrument_by_broker_id(self, broker: str, broker_contract_id: str | int) -> Instrument:
        row = self.conn.execute(
            "SELECT i.* FROM instruments i JOIN instrument_broker_ids b ON b.instrument_id = i.id "
            "WHERE b.broker = ? AND b.broker_contract_id = ?",
            (broker, str(broker_contract_id)),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no instrument for {broker} contract {broker_contract_id}")
        return Instrument.from_row(row)

    def strategy(self, name: str) -> Strategy | None:
        row = self.conn.execute("SELECT * FROM strategies WHERE name = ?", (name,)).fetchone()
        return Strategy.from_row(row) if row else None

    def account(self, broker: str, account_code: str) -> Account | None:
        row = self.conn.execute(
            "SELECT * FROM accounts WHERE broker = ? AND account_code = ?", (broker, account_code)
        ).fetchone()
        return Account.from_row(row) if row else None
