"""A Flex statement against the database: what differs, and the import of what is missing.

Compared, per account statement:
- executions by IB exec id: missing in the database, extra in it (within the statement's
  period), mismatched (side, quantity, price); a fill IB cancelled (busted) that the database
  still holds is listed apart, never imported;
- open positions by conid (a stock and its options never collide), database vs statement;
- cash transactions (dividends, withholding, interest, fees, transfers) by IB transaction id;
- cash per currency: the statement's starting cash plus its trades' net cash plus its cash
  transactions must give its ending cash (a check that nothing in it was misread or left out).
The import (`import_missing=True`) writes through the Recorder, like every other broker event:
executions with their commission, and cash events; each is stored once. Currency conversions
(CASH trades, AutoFX ones under `IBFLEX-<tradeID>`) are stored as cash, never as positions.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path

from quantstrip import clock
from quantstrip.brokers.conversions import conversion_time
from quantstrip.brokers.events import (
    CashEvent,
    CommissionEvent,
    ExecutionEvent,
    InstrumentSpec,
)
from quantstrip.brokers.ib.ids import split_exec_id
from quantstrip.brokers.ib_flex.statement import (
    SYNTHETIC_PREFIX,
    FlexCashTransaction,
    FlexStatement,
    FlexTrade,
)
from quantstrip.brokers.recorder import UNATTRIBUTED, Recorder
from quantstrip.db.handler import Database
from quantstrip.paths import workspace

BROKER = "ib"
MICRO = Decimal(1_000_000)
CENT = Decimal("0.01")
CASH_KINDS = {
    "dividends": "dividend",
    "payment in lieu of dividends": "payment_in_lieu",
    "withholding tax": "withholding_tax",
    "broker interest paid": "interest",
    "broker interest received": "interest",
    "bond interest paid": "interest",
    "bond interest received": "interest",
    "other fees": "fee",
    "advisor fees": "fee",
    "commission adjustments": "commission_adjustment",
}


@dataclass
class Reconciliation:
    account: str = ""
    missing_in_db: list[FlexTrade] = field(default_factory=list)
    # Fills recorded live whose commission report never arrived (a disconnect between the two).
    missing_commissions: list[FlexTrade] = field(default_factory=list)
    extra_in_db: list[str] = field(default_factory=list)  # exec ids
    mismatched: list[tuple[str, str]] = field(default_factory=list)  # (exec id, what differs)
    cancelled_in_db: list[str] = field(default_factory=list)  # busted by IB, still recorded
    position_differences: list[tuple[str, Decimal, Decimal]] = field(default_factory=list)
    missing_cash: list[FlexCashTransaction] = field(default_factory=list)
    cash_differences: list[tuple[str, Decimal, Decimal]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # rows not imported, with the reason
    imported: list[str] = field(default_factory=list)  # exec ids
    imported_commissions: list[str] = field(default_factory=list)  # exec ids of live fills
    imported_cash: list[str] = field(default_factory=list)  # transaction ids

    @property
    def clean(self) -> bool:
        return not (
            self.missing_in_db
            or self.missing_commissions
            or self.extra_in_db
            or self.mismatched
            or self.cancelled_in_db
            or self.position_differences
            or self.missing_cash
            or self.cash_differences
        )

    def summary(self) -> str:
        lines = [
            f"missing in database: {len(self.missing_in_db)}",
            f"commissions missing: {len(self.missing_commissions)}",
            f"extra in database: {len(self.extra_in_db)}",
            f"mismatched: {len(self.mismatched)}",
            f"cancelled by IB but recorded: {len(self.cancelled_in_db)}",
            f"position differences: {len(self.position_differences)}",
            f"cash transactions missing: {len(self.missing_cash)}",
            f"cash differences: {len(self.cash_differences)}",
            f"imported: {len(self.imported)} fills, {len(self.imported_commissions)} commissions "
            f"of live fills, {len(self.imported_cash)} cash transactions",
        ]
        lines += [f"  mismatch {exec_id}: {what}" for exec_id, what in self.mismatched]
        lines += [f"  cancelled by IB: {exec_id}" for exec_id in self.cancelled_in_db]
        lines += [
            f"  position {symbol}: database {ours} vs statement {theirs}"
            for symbol, ours, theirs in self.position_differences
        ]
        lines += [
            f"  cash {currency}: expected ending {expected} vs statement {reported}"
            for currency, expected, reported in self.cash_differences
        ]
        lines += [f"  skipped {why}" for why in self.skipped]
        return "\n".join(lines)


def store_statement(xml: bytes, statement: FlexStatement, folder: Path | None = None) -> Path:
    folder = folder or workspace().statements
    folder.mkdir(parents=True, exist_ok=True)
    stamp = statement.generated.replace(";", "T") or clock.stamp()
    path = (
        folder / f"flex_{statement.account}_{statement.from_date}_{statement.to_date}_{stamp}.xml"
    )
    path.write_bytes(xml)
    return path


def _iso(flex_date: str, end: bool = False) -> str:
    if len(flex_date) == 8 and flex_date.isdigit():
        return f"{flex_date[:4]}-{flex_date[4:6]}-{flex_date[6:]}"
    return flex_date or ("9999-12-31" if end else "0000-01-01")


def _spec(trade: FlexTrade) -> InstrumentSpec:
    option = trade.sec_type in ("OPT", "FOP")
    return InstrumentSpec(
        trade.underlying if option and trade.underlying else trade.symbol,
        sec_type=trade.sec_type,
        currency=trade.currency,
        multiplier=trade.multiplier or Decimal(1),
        broker_contract_id=trade.conid or None,
        expiry=trade.expiry if option else "",
        strike=trade.strike if option else Decimal(0),
        option_right=trade.put_call if option else "",
    )


def _compare_fills(db: Database, statement: FlexStatement, result: Reconciliation) -> None:
    account = db.account(BROKER, statement.account)
    rows = []
    if account is not None:
        rows = db.query(
            "SELECT e.exec_id, e.side, e.qty_micros, e.price_micros, "
            "c.commission_micros, c.currency AS commission_currency FROM executions e "
            "LEFT JOIN commissions c ON c.broker = e.broker AND c.exec_id = e.exec_id "
            "WHERE e.broker = ? AND e.account_id = ? AND e.superseded_by IS NULL "
            "AND substr(e.exec_time, 1, 10) BETWEEN ? AND ?",
            (BROKER, account.id, _iso(statement.from_date), _iso(statement.to_date, end=True)),
        )
    ours = {r["exec_id"]: r for r in rows}
    # Currency conversions are stored as cash movements (two legs), not as fills.
    conversions = set()
    if account is not None:
        conversions = {
            r["broker_txn_id"].rsplit(":", 1)[0]
            for r in db.query(
                "SELECT broker_txn_id FROM cash_events WHERE broker = ? AND account_id = ? "
                "AND kind = 'fx_conversion'",
                (BROKER, account.id),
            )
        }
    theirs = {t.exec_id: t for t in statement.trades}
    busted = {original.exec_id for original, _ in statement.cancelled if original.exec_id}
    for exec_id, trade in theirs.items():
        if trade.sec_type == "CASH":
            if exec_id not in conversions:
                result.missing_in_db.append(trade)
            continue
        row = ours.get(exec_id)
        if row is None:
            result.missing_in_db.append(trade)
            continue
        differences = []
        if row["side"] != trade.side:
            differences.append(f"side {row['side']} vs {trade.side}")
        if Decimal(row["qty_micros"]) / MICRO != trade.qty:
            differences.append(f"qty {Decimal(row['qty_micros']) / MICRO} vs {trade.qty}")
        if Decimal(row["price_micros"]) / MICRO != trade.price:
            differences.append(f"price {Decimal(row['price_micros']) / MICRO} vs {trade.price}")
        if row["commission_micros"] is None:
            if not differences:
                result.missing_commissions.append(trade)
        else:
            fee = (Decimal(row["commission_micros"]) / MICRO, row["commission_currency"])
            if fee != (trade.commission, trade.commission_currency):
                differences.append(
                    f"commission {_amount(fee[0])} {fee[1]} vs "
                    f"{_amount(trade.commission)} {trade.commission_currency}"
                )
        if differences:
            result.mismatched.append((exec_id, ", ".join(differences)))
    result.cancelled_in_db = sorted(set(ours) & busted)
    result.extra_in_db = sorted(set(ours) - set(theirs) - busted)
    result.skipped = [
        f"{t.symbol} {t.side} {t.qty} ({t.trade_id}): {why}" for t, why in statement.skipped
    ]


def _amount(value: Decimal) -> str:
    """An amount as people read it: at least cents, every further digit kept (a commission of
    0.0035 a share must not show as equal to a rounded one)."""
    return str(value.quantize(CENT) if value == value.quantize(CENT) else value.normalize())


def _compare_positions(db: Database, statement: FlexStatement, result: Reconciliation) -> None:
    """Positions keyed by conid (instruments without one by symbol and type)."""
    held: dict[str, tuple[str, Decimal]] = {}
    for r in db.query(
        "SELECT i.symbol, i.sec_type, b.broker_contract_id AS conid, SUM(p.qty_micros) AS qty "
        "FROM positions p JOIN instruments i ON i.id = p.instrument_id "
        "JOIN accounts a ON a.id = p.account_id "
        "LEFT JOIN instrument_broker_ids b ON b.instrument_id = i.id AND b.broker = a.broker "
        "WHERE a.broker = ? AND a.account_code = ? GROUP BY p.instrument_id",
        (BROKER, statement.account),
    ):
        key = r["conid"] or f"{r['symbol']}:{r['sec_type']}"
        label, qty = held.get(key, (r["symbol"], Decimal(0)))
        held[key] = (label, qty + Decimal(r["qty"]) / MICRO)
    reported = {
        key if position.conid else f"{position.symbol}:{position.sec_type}": position
        for key, position in statement.positions.items()
    }
    for key in sorted(set(held) | set(reported)):
        label = reported[key].symbol if key in reported else held[key][0]
        ours = held.get(key, ("", Decimal(0)))[1]
        theirs = reported[key].qty if key in reported else Decimal(0)
        if ours != theirs:
            result.position_differences.append((label, ours, theirs))


def _compare_cash(db: Database, statement: FlexStatement, result: Reconciliation) -> None:
    account = db.account(BROKER, statement.account)
    known: set[str] = set()
    if account is not None:
        known = {
            r[0]
            for r in db.query(
                "SELECT broker_txn_id FROM cash_events WHERE broker = ? AND account_id = ?",
                (BROKER, account.id),
            )
        }
    result.missing_cash = [c for c in statement.cash_transactions if c.txn_id not in known]
    flows: dict[str, Decimal] = defaultdict(Decimal)
    rows = [*statement.trades, *statement.cancellations, *(t for t, _ in statement.skipped)]
    for trade in [*rows, *(leg for pair in statement.cancelled for leg in pair)]:
        flows[trade.currency] += trade.net_cash
        if trade.sec_type == "CASH" and "." in trade.symbol:  # the other leg of a conversion
            bought = trade.qty if trade.side == "BUY" else -trade.qty
            flows[trade.symbol.split(".")[0]] += bought
    for cash in statement.cash_transactions:
        flows[cash.currency] += cash.amount
    for report in statement.cash:
        if report.currency in ("BASE_SUMMARY", "BASE", ""):
            continue
        expected = report.starting_cash + flows.get(report.currency, Decimal(0))
        if (expected - report.ending_cash).copy_abs() >= CENT / 2:
            result.cash_differences.append((report.currency, expected, report.ending_cash))


def reconcile(
    db: Database,
    statement: FlexStatement,
    *,
    import_missing: bool = False,
    strategy: str = UNATTRIBUTED,
) -> Reconciliation:
    """Compare one account's statement with the database; optionally import what is missing
    (fills attributed to their order's strategy when the order reference is one of ours, else
    to `strategy`)."""
    result = Reconciliation(statement.account)
    if import_missing and statement.base_currency:
        db.set_base_currency(BROKER, statement.account, statement.base_currency)
    _compare_fills(db, statement, result)
    _compare_cash(db, statement, result)
    if import_missing:
        recorder = Recorder(db)
        try:
            _import_missing(db, recorder, statement, result, strategy)
        finally:
            recorder.close()  # its background replayer, should anything have been journaled
    _compare_positions(db, statement, result)
    return result


def _import_missing(
    db: Database,
    recorder: Recorder,
    statement: FlexStatement,
    result: Reconciliation,
    strategy: str,
) -> None:
    """Store what the statement has and the database lacks, through the Recorder."""
    # Fills recorded live (same content) get the statement's FX rate to base.
    skip = {t.exec_id for t in result.missing_in_db} | {e for e, _ in result.mismatched}
    for trade in statement.trades:
        known = trade.exec_id not in skip and trade.sec_type != "CASH"
        if known and trade.fx_rate_to_base is not None:
            recorder.handle(_fill_event(trade, strategy))
    for trade in result.missing_commissions:
        recorder.handle(_commission_event(trade))
        result.imported_commissions.append(trade.exec_id)
    for trade in result.missing_in_db:
        _import_fill(recorder, trade, strategy)
        result.imported.append(trade.exec_id)
    for cash in result.missing_cash:
        recorder.handle(_cash_event(cash))
        result.imported_cash.append(cash.txn_id)
    result.imported_cash += _import_autofx(db, recorder, statement, strategy)


def reconcile_all(
    db: Database,
    statements: list[FlexStatement],
    *,
    import_missing: bool = False,
    strategy: str = UNATTRIBUTED,
) -> list[Reconciliation]:
    """Every account statement of a Flex answer, each on its own."""
    return [reconcile(db, s, import_missing=import_missing, strategy=strategy) for s in statements]


def _fill_event(trade: FlexTrade, strategy: str) -> ExecutionEvent:
    group, version = split_exec_id(trade.exec_id)  # a correction supersedes its earlier version
    return ExecutionEvent(
        BROKER,
        trade.account,
        trade.exec_id,
        _spec(trade),
        trade.side,
        trade.qty,
        trade.price,
        trade.time,
        client_order_id=trade.order_reference or None,
        strategy=None if strategy == UNATTRIBUTED else strategy,
        exchange=trade.exchange,
        base_exec_id=group,
        correction_number=version,
        fx_rate_to_base=trade.fx_rate_to_base,
    )


def _import_autofx(
    db: Database, recorder: Recorder, statement: FlexStatement, strategy: str
) -> list[str]:
    """AutoFX conversions (IB books them without an exec id) are cash like any conversion:
    stored under their trade id (`IBFLEX-<tradeID>`), once. Returns the ids stored now."""
    stored = []
    for trade, _ in statement.skipped:
        if trade.sec_type != "CASH" or not trade.trade_id:
            continue
        entry = replace(trade, exec_id=f"{SYNTHETIC_PREFIX}{trade.trade_id}")
        if conversion_time(db, BROKER, entry.exec_id) is None:
            recorder.handle(_fill_event(entry, strategy))
            if entry.commission:
                recorder.handle(
                    CommissionEvent(
                        BROKER, entry.exec_id, entry.commission, entry.commission_currency
                    )
                )
            stored.append(entry.exec_id)
    return stored


def _commission_event(trade: FlexTrade) -> CommissionEvent:
    return CommissionEvent(BROKER, trade.exec_id, trade.commission, trade.commission_currency)


def _import_fill(recorder: Recorder, trade: FlexTrade, strategy: str) -> None:
    recorder.handle(_fill_event(trade, strategy))
    recorder.handle(_commission_event(trade))


def _cash_event(cash: FlexCashTransaction) -> CashEvent:
    kind = CASH_KINDS.get(cash.type.strip().lower())
    if kind is None and cash.type.strip().lower().startswith("deposit"):
        kind = "deposit" if cash.amount >= 0 else "withdrawal"
    return CashEvent(
        BROKER,
        cash.account,
        cash.txn_id,
        kind or "other",
        cash.currency,
        cash.amount,
        cash.time,
        fx_rate_to_base=cash.fx_rate_to_base,
        instrument=(
            InstrumentSpec(
                cash.symbol, currency=cash.currency, broker_contract_id=cash.conid or None
            )
            if cash.symbol
            else None
        ),
        description=cash.description or cash.type,
    )
