"""Interactive Brokers Flex Web Service: download, parse, store and reconcile statements.

Two calls: SendRequest (token + query id) answers a reference code, then GetStatement is polled
until the statement is ready. IB answers "not yet" with a FlexStatementResponse carrying an
error code (1019 'generation in progress', 1018 rate limit, ...): those are retried with backoff,
the permanent ones (invalid token, expired, IP restriction...) raise at once. ib_async's
FlexReport takes the 1019 answer for a statement, hence this module.

Reconciliation compares the statement with the database: executions by IB exec id (missing,
extra, mismatched) and open positions per symbol; missing executions can be imported (stored once
by exec id, whatever happens later).
"""

from __future__ import annotations

import logging
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from quantstrip import clock
from quantstrip.brokers.ib.ids import split_exec_id
from quantstrip.db.handler import Database, ExecutionInput
from quantstrip.errors import QuantstripError
from quantstrip.paths import workspace

log = logging.getLogger(__name__)

BROKER = "ib"
RETRYABLE = {1001, 1004, 1005, 1006, 1007, 1008, 1009, 1018, 1019, 1021}
USER_AGENT = "Quantstrip/0.1 (Flex Web Service client)"


class FlexError(QuantstripError):
    """The Flex Web Service refused or failed; `code` is IB's error code."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(f"Flex Web Service error {code}: {message}")


@dataclass(frozen=True)
class FlexTrade:
    account: str
    exec_id: str
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


@dataclass(frozen=True)
class FlexPosition:
    account: str
    symbol: str
    conid: str
    qty: Decimal
    cost_basis_price: Decimal
    mark_price: Decimal


@dataclass(frozen=True)
class FlexCash:
    account: str
    currency: str
    starting_cash: Decimal
    ending_cash: Decimal
    commissions: Decimal


@dataclass
class FlexStatement:
    account: str
    from_date: str
    to_date: str
    generated: str
    trades: list[FlexTrade] = field(default_factory=list)
    positions: list[FlexPosition] = field(default_factory=list)
    cash: list[FlexCash] = field(default_factory=list)


@dataclass
class Reconciliation:
    missing_in_db: list[FlexTrade] = field(default_factory=list)
    extra_in_db: list[str] = field(default_factory=list)  # exec ids
    mismatched: list[tuple[str, str]] = field(default_factory=list)  # (exec id, what differs)
    position_differences: list[tuple[str, Decimal, Decimal]] = field(default_factory=list)
    imported: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (
            self.missing_in_db or self.extra_in_db or self.mismatched or self.position_differences
        )

    def summary(self) -> str:
        lines = [
            f"missing in database: {len(self.missing_in_db)}",
            f"extra in database: {len(self.extra_in_db)}",
            f"mismatched: {len(self.mismatched)}",
            f"position differences: {len(self.position_differences)}",
            f"imported: {len(self.imported)}",
        ]
        lines += [f"  mismatch {exec_id}: {what}" for exec_id, what in self.mismatched]
        lines += [
            f"  position {symbol}: database {ours} vs statement {theirs}"
            for symbol, ours, theirs in self.position_differences
        ]
        return "\n".join(lines)


# ---- download -----------------------------------------------------------------------
def _response_error(root: ET.Element) -> FlexError | None:
    if root.tag != "FlexStatementResponse":
        return None
    if (root.findtext("Status") or "").strip() == "Success":
        return None
    code = int(root.findtext("ErrorCode") or 0)
    return FlexError(code, (root.findtext("ErrorMessage") or "unknown error").strip())


class FlexClient:
    def __init__(
        self,
        token: str,
        query_id: str,
        *,
        base_url: str,
        poll_attempts: int = 10,
        poll_interval_s: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        timeout_s: float = 60.0,
    ) -> None:
        if not token or not query_id:
            raise FlexError(1020, "a Flex token and query id are required")
        self._token = token
        self.query_id = str(query_id)
        self.base_url = base_url.rstrip("/")
        self.poll_attempts = poll_attempts
        self.poll_interval_s = poll_interval_s
        self.sleep = sleep
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"FlexClient(query_id={self.query_id!r}, base_url={self.base_url!r})"

    def _get(self, url: str, params: dict[str, str]) -> bytes:
        query = urllib.parse.urlencode(params)
        request = urllib.request.Request(f"{url}?{query}", headers={"User-Agent": USER_AGENT})
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            return response.read()

    def _with_retries(self, call: Callable[[], bytes], what: str) -> bytes:
        delay = self.poll_interval_s
        for attempt in range(1, self.poll_attempts + 1):
            body = call()
            error = _response_error(ET.fromstring(body))
            if error is None:
                return body
            if error.code not in RETRYABLE or attempt == self.poll_attempts:
                raise error
            wait = max(delay, 10.0 if error.code == 1018 else 0.0)
            log.info(
                "%s: %s; retrying in %.1fs (%d/%d)", what, error, wait, attempt, self.poll_attempts
            )
            self.sleep(wait)
            delay = min(delay * 2, 60.0)
        raise FlexError(1009, f"{what}: gave up")  # pragma: no cover - loop always returns/raises

    def download(self) -> bytes:
        """The statement XML (SendRequest, then GetStatement until it is ready)."""
        sent = self._with_retries(
            lambda: self._get(
                f"{self.base_url}/SendRequest", {"t": self._token, "q": self.query_id, "v": "3"}
            ),
            "SendRequest",
        )
        root = ET.fromstring(sent)
        reference = (root.findtext("ReferenceCode") or "").strip()
        url = (root.findtext("Url") or f"{self.base_url}/GetStatement").strip()
        if not reference:
            raise FlexError(1017, "SendRequest answered no reference code")
        return self._with_retries(
            lambda: self._get(url, {"t": self._token, "q": reference, "v": "3"}), "GetStatement"
        )


def client_from_settings(**kw: object) -> FlexClient:
    from quantstrip import settings

    flex = settings.platform().brokers.flex
    token = settings.get_secret("brokers.flex.token")
    if token is None:
        raise FlexError(1015, "no token: run `quantstrip secrets set brokers.flex.token`")
    return FlexClient(
        token.reveal(),
        flex.query_id,
        base_url=flex.base_url,
        poll_attempts=flex.poll_attempts,
        poll_interval_s=flex.poll_interval_s,
        **kw,  # type: ignore[arg-type]
    )


# ---- parse and store ----------------------------------------------------------------
def _dec(value: str | None) -> Decimal:
    return Decimal(value) if value not in (None, "") else Decimal(0)


def _time(value: str, tz: ZoneInfo) -> datetime:
    """Flex 'yyyyMMdd;HHmmss' or 'yyyy-MM-dd;HHmmss', in the statement's time zone."""
    text = value.replace("-", "").replace(";", " ").replace(",", " ")
    return datetime.strptime(text, "%Y%m%d %H%M%S").replace(tzinfo=tz)


def parse_statement(xml: bytes | str, tz: str = "America/New_York") -> FlexStatement:
    root = ET.fromstring(xml)
    error = _response_error(root)
    if error is not None:
        raise error
    node = root.find(".//FlexStatement")
    if node is None:
        raise FlexError(1003, "the answer holds no FlexStatement")
    zone = ZoneInfo(tz)
    statement = FlexStatement(
        node.get("accountId", ""),
        node.get("fromDate", ""),
        node.get("toDate", ""),
        node.get("whenGenerated", ""),
    )
    for t in node.iterfind("./Trades/Trade"):
        if t.get("levelOfDetail", "EXECUTION") != "EXECUTION":
            continue
        qty = _dec(t.get("quantity"))
        statement.trades.append(
            FlexTrade(
                account=t.get("accountId", statement.account),
                exec_id=t.get("ibExecID", ""),
                symbol=t.get("symbol", ""),
                conid=t.get("conid", ""),
                sec_type=t.get("assetCategory", "STK"),
                currency=t.get("currency", "USD"),
                multiplier=_dec(t.get("multiplier") or "1"),
                side="BUY" if t.get("buySell", "").upper().startswith("BUY") else "SELL",
                qty=abs(qty),
                price=_dec(t.get("tradePrice")),
                commission=-_dec(t.get("ibCommission")),
                commission_currency=t.get("ibCommissionCurrency", "USD"),
                time=_time(t.get("dateTime", ""), zone),
                order_reference=t.get("orderReference", ""),
                exchange=t.get("exchange", ""),
            )
        )
    for p in node.iterfind("./OpenPositions/OpenPosition"):
        statement.positions.append(
            FlexPosition(
                p.get("accountId", statement.account),
                p.get("symbol", ""),
                p.get("conid", ""),
                _dec(p.get("position")),
                _dec(p.get("costBasisPrice")),
                _dec(p.get("markPrice")),
            )
        )
    for c in node.iterfind("./CashReport/CashReportCurrency"):
        statement.cash.append(
            FlexCash(
                c.get("accountId", statement.account),
                c.get("currency", ""),
                _dec(c.get("startingCash")),
                _dec(c.get("endingCash")),
                _dec(c.get("commissions")),
            )
        )
    return statement


def store_statement(xml: bytes, statement: FlexStatement, folder: Path | None = None) -> Path:
    folder = folder or workspace().statements
    folder.mkdir(parents=True, exist_ok=True)
    stamp = statement.generated.replace(";", "T") or clock.stamp()
    path = (
        folder / f"flex_{statement.account}_{statement.from_date}_{statement.to_date}_{stamp}.xml"
    )
    path.write_bytes(xml)
    return path


# ---- reconcile ----------------------------------------------------------------------
def reconcile(
    db: Database,
    statement: FlexStatement,
    *,
    import_missing: bool = False,
    strategy: str = "unattributed",
) -> Reconciliation:
    """Compare the statement's fills and open positions with the database (broker 'ib')."""
    result = Reconciliation()
    account = db.account(BROKER, statement.account)
    rows = []
    if account is not None:
        rows = db.query(
            "SELECT e.exec_id, e.side, e.qty_micros, e.price_micros, i.symbol FROM executions e "
            "JOIN instruments i ON i.id = e.instrument_id WHERE e.broker = ? AND e.account_id = ? "
            "AND e.superseded_by IS NULL AND substr(e.exec_time, 1, 10) BETWEEN ? AND ?",
            (BROKER, account.id, _iso(statement.from_date), _iso(statement.to_date, end=True)),
        )
    ours = {r["exec_id"]: r for r in rows}
    theirs = {t.exec_id: t for t in statement.trades}
    for exec_id, trade in theirs.items():
        row = ours.get(exec_id)
        if row is None:
            result.missing_in_db.append(trade)
            continue
        differences = []
        if row["side"] != trade.side:
            differences.append(f"side {row['side']} vs {trade.side}")
        if Decimal(row["qty_micros"]) / 1_000_000 != trade.qty:
            differences.append(f"qty {Decimal(row['qty_micros']) / 1_000_000} vs {trade.qty}")
        if Decimal(row["price_micros"]) / 1_000_000 != trade.price:
            differences.append(f"price {Decimal(row['price_micros']) / 1_000_000} vs {trade.price}")
        if differences:
            result.mismatched.append((exec_id, ", ".join(differences)))
    result.extra_in_db = sorted(set(ours) - set(theirs))
    if import_missing:
        for trade in result.missing_in_db:
            _import(db, trade, strategy)
            result.imported.append(trade.exec_id)
    held: dict[str, Decimal] = {}
    for r in db.query(
        "SELECT i.symbol, SUM(p.qty_micros) AS qty FROM positions p "
        "JOIN instruments i ON i.id = p.instrument_id JOIN accounts a ON a.id = p.account_id "
        "WHERE a.broker = ? AND a.account_code = ? GROUP BY i.symbol",
        (BROKER, statement.account),
    ):
        held[r["symbol"]] = Decimal(r["qty"]) / 1_000_000
    reported = {p.symbol: p.qty for p in statement.positions}
    for symbol in sorted(set(held) | set(reported)):
        ours_qty, theirs_qty = held.get(symbol, Decimal(0)), reported.get(symbol, Decimal(0))
        if ours_qty != theirs_qty:
            result.position_differences.append((symbol, ours_qty, theirs_qty))
    return result


def _iso(flex_date: str, end: bool = False) -> str:
    if len(flex_date) == 8 and flex_date.isdigit():
        return f"{flex_date[:4]}-{flex_date[4:6]}-{flex_date[6:]}"
    return flex_date or ("9999-12-31" if end else "0000-01-01")


def _import(db: Database, trade: FlexTrade, strategy: str) -> None:
    instrument = db.ensure_instrument(
        trade.symbol,
        sec_type=trade.sec_type,
        currency=trade.currency,
        multiplier=trade.multiplier,
        broker=BROKER,
        broker_contract_id=trade.conid,
    )
    order = db.order_by_client_id(trade.order_reference) if trade.order_reference else None
    group, version = split_exec_id(trade.exec_id)  # a correction supersedes its earlier version
    db.record_execution(
        ExecutionInput(
            BROKER,
            trade.account,
            trade.exec_id,
            order.strategy_id if order and order.strategy_id else strategy,
            instrument,
            trade.side,
            trade.qty,
            trade.price,
            trade.time,
            order_id=order.id if order else None,
            exchange=trade.exchange,
            base_exec_id=group,
            correction_number=version,
        )
    )
    db.record_commission(
        broker=BROKER,
        exec_id=trade.exec_id,
        commission=trade.commission,
        currency=trade.commission_currency,
    )
