"""Flex statements as IB writes them, parsed into plain records.

- A response holds one FlexStatement per account (`parse_statements` returns all of them).
- Trades: EXECUTION rows. A cancelled trade comes back as a row marked `BUY (Ca.)`/`SELL (Ca.)`
  (or notes `Ca`) reversing the original; the pair nets out (`cancelled`), a cancellation whose
  original is in an earlier statement is kept apart (`cancellations`). A row without ibExecID is
  an AutoFX conversion (skipped as a fill, its cash counted; the reconciliation stores it
  as cash) or a book entry such as an option's
  assignment or expiry (kept, under the stable id `IBFLEX-<tradeID>`). A trade without buySell
  is an error naming the row: guessing a side would book it backwards.
- Open positions keyed by conid: the SUMMARY row is the position; LOT rows are its tax lots
  and never overwrite it (a statement with lots only is summed per conid).
- Cash: CashReport per currency, and CashTransactions (dividends, withholding, interest,
  fees, transfers) as cash records.
- Dates in every format Flex offers: yyyyMMdd, yyyy-MM-dd, MM/dd/yyyy, MM/dd/yy, dd-MMM-yy;
  times HHmmss or HH:mm:ss; separators ';', ',', ' ' or none; a dateTime, or tradeDate plus
  tradeTime. Times are in the statement's zone (a query setting; New York by default).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from quantstrip.brokers.ib_flex.client import FlexError, response_error
from quantstrip.errors import QuantstripError

_DATES = {
    (8, 0): "%Y%m%d",
    (8, 2): "%m/%d/%y",
    (9, 0): "%d-%b-%y",
    (10, 0): "%Y-%m-%d",
    (10, 2): "%m/%d/%Y",
}
_TIMES = {6: "%H%M%S", 8: "%H:%M:%S"}
_OFFSET = re.compile(r"[+-]\d{2}:?\d{2}$")
SYNTHETIC_PREFIX = "IBFLEX-"


class FlexFormatError(FlexError):
    """A statement IB sent that cannot be read as it stands (the row is named)."""

    def __init__(self, message: str) -> None:
        self.code, self.retryable = 0, False
        QuantstripError.__init__(self, f"Flex statement: {message}")


def flex_date(value: str, what: str) -> datetime:
    text = value.strip()
    form = _DATES.get((len(text), text.count("/")))
    if form is None:
        raise FlexFormatError(f"{what}: not a Flex date: {value!r}")
    try:
        return datetime.strptime(text, form)
    except ValueError:
        if "/" in text:  # dd/MM/yyyy is the other slash format Flex offers
            try:
                return datetime.strptime(text, form.replace("%m/%d", "%d/%m"))
            except ValueError:
                pass
        raise FlexFormatError(f"{what}: not a Flex date: {value!r}") from None


def flex_time(value: str, zone: ZoneInfo, what: str, time_of_day: str = "") -> datetime:
    """A Flex date-time (or a date plus a separate time) as an aware datetime."""
    text = value.strip().replace(", ", ",")
    if not text or text == "MULTI":
        raise FlexFormatError(f"{what}: no usable date/time: {value!r}")
    date_part, time_part = text, time_of_day.strip()
    for separator in (";", ",", " ", "T"):
        if separator in text:
            date_part, time_part = text.split(separator, 1)
            break
    else:
        if len(text) in (14, 16) and text[:8].isdigit():  # no separator at all
            date_part, time_part = text[:8], text[8:]
    zone_used = zone
    offset = _OFFSET.search(time_part)
    if offset:  # old statements append the offset: honour it
        time_part, sign = time_part[: offset.start()], offset.group()
        zone_used = datetime.strptime(sign.replace(":", ""), "%z").tzinfo  # type: ignore[assignment]
    day = flex_date(date_part, what)
    if not time_part:
        return day.replace(tzinfo=zone_used)
    form = _TIMES.get(len(time_part))
    if form is None:
        raise FlexFormatError(f"{what}: not a Flex time: {value!r}")
    moment = datetime.strptime(time_part, form)
    return day.replace(hour=moment.hour, minute=moment.minute, second=moment.second).replace(
        tzinfo=zone_used
    )


def number(value: str | None, what: str) -> Decimal:
    if value in (None, ""):
        return Decimal(0)
    try:
        return Decimal(value.replace(",", ""))
    except InvalidOperation:
        raise FlexFormatError(f"{what}: not a number: {value!r}") from None


@dataclass(frozen=True)
class FlexTrade:
    account: str
    exec_id: str  # ibExecID, or IBFLEX-<tradeID> for a book entry without one
    symbol: str
    conid: str
    sec_type: str
    currency: str
    multiplier: Decimal
    side: str
    qty: Decimal
    price: Decimal
    commission: Decimal  # positive: what was paid
    commission_currency: str
    time: datetime
    order_reference: str
    exchange: str
    trade_id: str = ""
    net_cash: Decimal = Decimal(0)  # signed cash effect in `currency`, commission included
    fx_rate_to_base: Decimal | None = None
    notes: tuple[str, ...] = ()
    cancels: str = ""  # for a cancellation row: the original's tradeID when IB gives it
    underlying: str = ""
    expiry: str = ""
    strike: Decimal = Decimal(0)
    put_call: str = ""

    @property
    def is_cancellation(self) -> bool:
        return "Ca" in self.notes


@dataclass(frozen=True)
class FlexPosition:
    account: str
    symbol: str
    conid: str
    qty: Decimal
    cost_basis_price: Decimal
    mark_price: Decimal
    sec_type: str = "STK"
    currency: str = "USD"
    fx_rate_to_base: Decimal | None = None


@dataclass(frozen=True)
class FlexCash:
    account: str
    currency: str
    starting_cash: Decimal
    ending_cash: Decimal
    commissions: Decimal


@dataclass(frozen=True)
class FlexCashTransaction:
    account: str
    txn_id: str
    type: str  # IB's words: Dividends, Withholding Tax, Broker Interest Received, ...
    currency: str
    amount: Decimal
    time: datetime
    symbol: str = ""
    conid: str = ""
    description: str = ""
    fx_rate_to_base: Decimal | None = None


@dataclass
class FlexStatement:
    account: str
    from_date: str
    to_date: str
    generated: str
    base_currency: str = ""
    trades: list[FlexTrade] = field(default_factory=list)  # cancellations netted out
    cancelled: list[tuple[FlexTrade, FlexTrade]] = field(default_factory=list)  # (orig, cancel)
    cancellations: list[FlexTrade] = field(default_factory=list)  # originals not in this one
    skipped: list[tuple[FlexTrade, str]] = field(default_factory=list)  # (row, why)
    positions: dict[str, FlexPosition] = field(default_factory=dict)  # by conid
    lots: list[FlexPosition] = field(default_factory=list)
    cash: list[FlexCash] = field(default_factory=list)
    cash_transactions: list[FlexCashTransaction] = field(default_factory=list)


def parse_statements(xml: bytes | str, tz: str = "America/New_York") -> list[FlexStatement]:
    """Every statement of a Flex answer (one per account)."""
    root = ET.fromstring(xml)
    error = response_error(root)
    if error is not None:
        raise error
    nodes = root.findall(".//FlexStatement")
    if not nodes:
        raise FlexError(1003, "the answer holds no FlexStatement")
    zone = ZoneInfo(tz)
    return [_statement(node, zone) for node in nodes]


def parse_statement(xml: bytes | str, tz: str = "America/New_York") -> FlexStatement:
    """The statement of a single-account answer (an answer with several is refused: use
    `parse_statements`, so that no account is silently left out)."""
    statements = parse_statements(xml, tz)
    if len(statements) > 1:
        accounts = ", ".join(s.account for s in statements)
        raise FlexFormatError(f"the answer holds {len(statements)} statements ({accounts})")
    return statements[0]


def _statement(node: ET.Element, zone: ZoneInfo) -> FlexStatement:
    info = node.find("./AccountInformation")
    statement = FlexStatement(
        node.get("accountId", ""),
        node.get("fromDate", ""),
        node.get("toDate", ""),
        node.get("whenGenerated", ""),
        base_currency=info.get("currency", "") if info is not None else "",
    )
    rows = [
        _trade(t, statement.account, zone)
        for t in node.iterfind("./Trades/Trade")
        if t.get("levelOfDetail", "EXECUTION") == "EXECUTION"
    ]
    _net_cancellations(statement, rows)
    for p in node.iterfind("./OpenPositions/OpenPosition"):
        position = _position(p, statement.account)
        if p.get("levelOfDetail", "SUMMARY") == "SUMMARY":
            statement.positions[position.conid] = position
        else:
            statement.lots.append(position)
    for conid in {lot.conid for lot in statement.lots} - set(statement.positions):
        lots = [lot for lot in statement.lots if lot.conid == conid]  # lots only: their sum
        total = sum((lot.qty for lot in lots), Decimal(0))
        statement.positions[conid] = replace(lots[0], qty=total)
    for c in node.iterfind("./CashReport/CashReportCurrency"):
        statement.cash.append(
            FlexCash(
                c.get("accountId", statement.account),
                c.get("currency", ""),
                number(c.get("startingCash"), "startingCash"),
                number(c.get("endingCash"), "endingCash"),
                number(c.get("commissions"), "commissions"),
            )
        )
    for c in node.iterfind("./CashTransactions/CashTransaction"):
        if c.get("levelOfDetail", "DETAIL").upper() in ("DETAIL", ""):
            statement.cash_transactions.append(_cash_transaction(c, statement.account, zone))
    return statement


def _trade(t: ET.Element, account: str, zone: ZoneInfo) -> FlexTrade:
    trade_id = t.get("tradeID", "") or t.get("transactionID", "")
    where = f"statement {account}: trade {trade_id or '?'} ({t.get('symbol', '?')})"
    buy_sell = (t.get("buySell") or "").strip().upper()
    if not buy_sell.startswith(("BUY", "SELL")):
        raise FlexFormatError(f"{where} has no buySell ({buy_sell!r})")
    notes = tuple(n.strip() for n in (t.get("notes") or "").split(";") if n.strip())
    if "(CA.)" in buy_sell and "Ca" not in notes:
        notes = (*notes, "Ca")
    if t.get("dateTime"):
        moment = flex_time(t.get("dateTime", ""), zone, where, t.get("tradeTime", ""))
    else:
        moment = flex_time(t.get("tradeDate", ""), zone, where, t.get("tradeTime", ""))
    exec_id = t.get("ibExecID", "") or ""
    if not exec_id and t.get("assetCategory") != "CASH" and trade_id:
        exec_id = f"{SYNTHETIC_PREFIX}{trade_id}"
    rate = t.get("fxRateToBase")
    return FlexTrade(
        account=t.get("accountId", account),
        exec_id=exec_id,
        symbol=t.get("symbol", ""),
        conid=t.get("conid", ""),
        sec_type=t.get("assetCategory", "STK"),
        currency=t.get("currency", "USD"),
        multiplier=number(t.get("multiplier") or "1", f"{where} multiplier"),
        side="BUY" if buy_sell.startswith("BUY") else "SELL",
        qty=abs(number(t.get("quantity"), f"{where} quantity")),
        price=number(t.get("tradePrice"), f"{where} tradePrice"),
        commission=-number(t.get("ibCommission"), f"{where} ibCommission"),
        commission_currency=t.get("ibCommissionCurrency") or t.get("currency", "USD"),
        time=moment,
        order_reference=t.get("orderReference", ""),
        exchange=t.get("exchange", ""),
        trade_id=trade_id,
        net_cash=number(t.get("netCash"), f"{where} netCash"),
        fx_rate_to_base=number(rate, f"{where} fxRateToBase") if rate else None,
        notes=notes,
        cancels=t.get("origTradeID", "") or "",
        underlying=t.get("underlyingSymbol", ""),
        expiry=(t.get("expiry") or "").replace("-", ""),
        strike=number(t.get("strike"), f"{where} strike"),
        put_call=t.get("putCall", ""),
    )


def _net_cancellations(statement: FlexStatement, rows: list[FlexTrade]) -> None:
    originals = [r for r in rows if not r.is_cancellation]
    for cancel in (r for r in rows if r.is_cancellation):
        original = next(
            (o for o in originals if cancel.cancels and o.trade_id == cancel.cancels), None
        ) or next(
            (
                o
                for o in originals
                if (o.conid, o.side, o.qty, o.price)
                == (cancel.conid, cancel.side, cancel.qty, cancel.price)
            ),
            None,
        )
        if original is None:
            statement.cancellations.append(cancel)
            continue
        originals.remove(original)
        statement.cancelled.append((original, cancel))
    for trade in originals:
        if not trade.exec_id:
            statement.skipped.append((trade, "no ibExecID (an AutoFX currency conversion)"))
        else:
            statement.trades.append(trade)


def _position(p: ET.Element, account: str) -> FlexPosition:
    where = f"statement {account}: position {p.get('symbol', '?')}"
    rate = p.get("fxRateToBase")
    return FlexPosition(
        p.get("accountId", account),
        p.get("symbol", ""),
        p.get("conid", "") or p.get("symbol", ""),
        number(p.get("position"), f"{where} position"),
        number(p.get("costBasisPrice"), f"{where} costBasisPrice"),
        number(p.get("markPrice"), f"{where} markPrice"),
        p.get("assetCategory", "STK"),
        p.get("currency", "USD"),
        number(rate, f"{where} fxRateToBase") if rate else None,
    )


def _cash_transaction(c: ET.Element, account: str, zone: ZoneInfo) -> FlexCashTransaction:
    txn = c.get("transactionID", "") or ""
    where = f"statement {account}: cash transaction {txn or '?'}"
    when = c.get("dateTime") or c.get("settleDate") or c.get("reportDate") or ""
    rate = c.get("fxRateToBase")
    amount = number(c.get("amount"), f"{where} amount")
    if not txn:  # very old statements: a stable id from what identifies the entry
        parts = (c.get("type", ""), when, c.get("currency", ""), str(amount))
        txn = "|".join((*parts, c.get("description", "")))
    return FlexCashTransaction(
        c.get("accountId", account),
        txn,
        c.get("type", ""),
        c.get("currency", ""),
        amount,
        flex_time(when, zone, where),
        c.get("symbol", ""),
        c.get("conid", ""),
        c.get("description", ""),
        number(rate, f"{where} fxRateToBase") if rate else None,
    )
