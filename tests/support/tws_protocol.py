"""The TWS socket protocol as the test server speaks it (server version 178).

Messages are length-prefixed, NUL-separated text fields. The layouts below follow ib_async
2.1.0's client (placeOrder) and decoder (openOrder, completedOrder, execDetails...), which is
the other side of the wire; empty fields decode to the client's defaults.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

SERVER_VERSION = 178
UNSET_DOUBLE = 1.7976931348623157e308

# Incoming message ids (client → TWS).
PLACE_ORDER, CANCEL_ORDER, REQ_OPEN_ORDERS, REQ_ACCOUNT_UPDATES, REQ_EXECUTIONS = 3, 4, 5, 6, 7
REQ_IDS, REQ_AUTO_OPEN_ORDERS, REQ_ALL_OPEN_ORDERS, REQ_HISTORICAL_DATA = 8, 15, 16, 20
REQ_CURRENT_TIME, REQ_GLOBAL_CANCEL, REQ_POSITIONS, START_API = 49, 58, 61, 71
REQ_ACCOUNT_UPDATES_MULTI, CANCEL_ACCOUNT_UPDATES_MULTI, REQ_COMPLETED_ORDERS = 76, 77, 99

# Connectivity and order messages TWS sends through `error` (texts as TWS words them).
MESSAGES = {
    110: "The price does not conform to the minimum price variation for this contract.",
    201: "Order rejected - reason:",
    202: "Order Canceled - reason:",
    203: "The security is not available or allowed for this account.",
    321: "Error validating request.-'bN' : cause - The API interface is currently in Read-Only "
    "mode.",
    326: "Unable to connect as the client id is already in use. Retry with a unique client id.",
    399: "Order Message:\nWarning: your order will not be placed at the exchange until "
    "09:30:00 US/Eastern",
    404: "Shares for this order are not immediately available for short sale. The order will "
    "be held while we attempt to locate the shares.",
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
    2103: "Market data farm connection is broken:usfarm",
    2110: "Connectivity between Trader Workstation and server is broken. It will be restored "
    "automatically.",
    10147: "OrderId that needs to be cancelled is not found.",
    10289: "Order rejected - the order would breach a risk limit of this account.",
}


def frame(*fields: object) -> bytes:
    payload = "".join(f"{'' if f is None else f}\0" for f in fields).encode()
    return struct.pack(">I", len(payload)) + payload


def error(request_id: int, code: int, text: str | None = None) -> bytes:
    return frame(4, 2, request_id, code, text if text is not None else MESSAGES[code], "")


# placeOrder (server version 178, no combo legs): the position of each field we read.
_PLACE_FIELDS = {
    "order_id": 1,
    "contract": slice(2, 14),
    "action": 16,
    "qty": 17,
    "order_type": 18,
    "limit_price": 19,
    "aux_price": 20,
    "tif": 21,
    "oca_group": 22,
    "account": 23,
    "order_ref": 26,
    "transmit": 27,
    "parent_id": 28,
    "outside_rth": 33,
    "good_till": 38,
    "oca_type": 46,
    "trail_stop_price": 68,
    "trailing_percent": 69,
}


@dataclass
class TwsOrder:
    """An order as TWS holds it: the terms the client sent and the state TWS keeps."""

    order_id: int
    client_id: int
    perm_id: int
    contract: list[str]  # the 12 contract fields as the client sent them
    action: str
    qty: float
    order_type: str
    limit_price: str
    aux_price: str
    tif: str
    oca_group: str
    oca_type: int
    account: str
    order_ref: str
    transmit: bool
    parent_id: int
    good_till: str = ""
    trail_stop_price: str = ""
    trailing_percent: str = ""
    outside_rth: bool = False
    status: str = "PendingSubmit"
    filled: float = 0.0
    avg_price: float = 0.0
    completed_time: str = ""
    completed_status: str = ""
    history: list[str] = field(default_factory=list)  # every status TWS sent, in order

    @property
    def remaining(self) -> float:
        return self.qty - self.filled

    @property
    def is_open(self) -> bool:
        return self.status in ("PreSubmitted", "Submitted", "PendingSubmit", "PendingCancel")

    @property
    def con_id(self) -> int:
        return int(self.contract[0] or 0)

    @classmethod
    def from_place_order(cls, fields: list[str], client_id: int, perm_id: int, account: str):
        def get(name: str) -> str:
            index = _PLACE_FIELDS[name]
            assert isinstance(index, int)
            return fields[index] if index < len(fields) else ""

        return cls(
            order_id=int(get("order_id")),
            client_id=client_id,
            perm_id=perm_id,
            contract=fields[_PLACE_FIELDS["contract"]],  # type: ignore[index]
            action=get("action"),
            qty=float(get("qty")),
            order_type=get("order_type"),
            limit_price=get("limit_price"),
            aux_price=get("aux_price"),
            tif=get("tif") or "DAY",
            oca_group=get("oca_group"),
            oca_type=int(get("oca_type") or 0),
            account=get("account") or account,
            order_ref=get("order_ref"),
            transmit=get("transmit") == "1",
            parent_id=int(get("parent_id") or 0),
            good_till=get("good_till"),
            trail_stop_price=get("trail_stop_price"),
            trailing_percent=get("trailing_percent"),
            outside_rth=get("outside_rth") == "1",
        )

    def modification(self, fields: list[str]) -> dict[str, object]:
        """The terms a second placeOrder with this order id asks to change."""
        new = TwsOrder.from_place_order(fields, self.client_id, self.perm_id, self.account)
        return {
            name: getattr(new, name)
            for name in ("qty", "limit_price", "aux_price", "tif", "good_till", "trailing_percent")
        }


def contract_fields(c: list[str]) -> list[str]:
    """The 11 contract fields TWS sends back (conId filled in, exchange kept)."""
    con_id, symbol, sec_type, expiry, strike, right, mult, exch, _primary, cur, local, tclass = c
    con_id = con_id if con_id not in ("", "0") else str(sum(map(ord, symbol)) * 7919 % 10**8)
    return [
        con_id,
        symbol,
        sec_type,
        expiry,
        strike or "0",
        right,
        mult,
        exch,
        cur,
        local or symbol,
        tclass or symbol,
    ]


def order_status(o: TwsOrder, last_fill_price: float = 0.0, why_held: str = "") -> bytes:
    return frame(
        3,
        o.order_id,
        o.status,
        o.filled,
        o.remaining,
        o.avg_price,
        o.perm_id,
        o.parent_id,
        last_fill_price,
        o.client_id,
        why_held,
        0.0,
    )


def _order_terms(o: TwsOrder) -> list[object]:
    return [o.action, o.qty, o.order_type, o.limit_price or "0", o.aux_price or "0", o.tif]


def open_order(o: TwsOrder) -> bytes:
    u = ""
    fields: list[object] = [5, o.order_id, *contract_fields(o.contract), *_order_terms(o)]
    fields += [o.oca_group, o.account, "", 0, o.order_ref, o.client_id, o.perm_id]
    fields += [int(o.outside_rth), 0, 0, u, u, u, u, u]  # outsideRth .. faPercentage
    fields += [u, o.good_till, u, u, u, 0, u, u, 0]  # modelCode .. auctionStrategy
    fields += [u, u, u, u, u, u, 0, 0, 0, u]  # startingPrice .. minQty
    fields += [o.oca_type, 0, 0, u, o.parent_id, 0, u, 0, u, u]  # ocaType .. deltaNeutralAux
    fields += [0, 0, o.trail_stop_price, o.trailing_percent, u, u, u]  # .. comboLegsDescrip
    fields += [0, 0, 0, u, u, u, u]  # no legs, no params, scale sizes, no hedge
    fields += [0, u, u, 0, 0, u]  # optOutSmartRouting .. dncPresent, algoStrategy
    fields += [0, 0, o.status, *[u] * 9, u, u, u, u, u, 0, 0]  # solicited .. randomizePrice
    fields += [0]  # conditions
    fields += [u, u, o.trail_stop_price, u, u, u, u, 0, u, u, u, u, 0, 0, u, 0]
    fields += [u, 0, 0]  # duration, postToAts, autoCancelParent
    fields += [u, u, u, u, u]  # minTradeQty .. midOffsetAtHalf
    return frame(*fields)


def completed_order(o: TwsOrder) -> bytes:
    u = ""
    fields: list[object] = [101, *contract_fields(o.contract), *_order_terms(o)]
    fields += [o.oca_group, o.account, "", 0, o.order_ref, o.perm_id]
    fields += [int(o.outside_rth), 0, 0, u, u, u, u]  # outsideRth .. faPercentage
    fields += [u, o.good_till, u, u, u, 0, u, u]  # modelCode .. exemptCode
    fields += [u, u, u, u, u, u, 0, 0, u, o.oca_type, 0, u, 0, u, u]  # .. deltaNeutralAux
    fields += [0, 0, o.trail_stop_price, o.trailing_percent, u]  # .. comboLegsDescrip
    fields += [0, 0, 0, u, u, u, u]  # no legs, no params, scale sizes, no hedge
    fields += [u, u, 0, 0, u]  # clearingAccount .. dncPresent, algoStrategy
    fields += [0, o.status, 0, 0]  # solicited, status, randomize
    fields += [0]  # conditions
    fields += [o.trail_stop_price, u, u, 0, 0, u, o.filled, 0, 0, u, 0, 0, 0]
    fields += [o.completed_time, o.completed_status]
    fields += [u, u, u, u, u]  # minTradeQty .. midOffsetAtHalf
    return frame(*fields)


@dataclass
class TwsExecution:
    """One fill as TWS reports it: execDetails fields after the request id, its commission."""

    order: TwsOrder
    fields: list[object]
    commission: list[object]

    @property
    def exec_id(self) -> str:
        return str(self.fields[12])

    def details(self, request_id: int = -1) -> bytes:
        return frame(11, request_id, *self.fields)

    def report(self) -> bytes:
        return frame(59, 1, *self.commission)


def execution(
    o: TwsOrder, exec_id: str, stamp: str, qty: float, price: float, commission: float, ccy: str
) -> TwsExecution:
    side = "BOT" if o.action == "BUY" else "SLD"
    fields: list[object] = [o.order_id, *contract_fields(o.contract), exec_id, stamp, o.account]
    fields += ["ISLAND", side, qty, price, o.perm_id, o.client_id, 0, o.filled, o.avg_price]
    fields += [o.order_ref, "", "", "", 1, 0]  # evRule .. lastLiquidity, pendingPriceRevision
    report: list[object] = [exec_id, commission, ccy, UNSET_DOUBLE, UNSET_DOUBLE, ""]
    return TwsExecution(o, fields, report)


def position(account: str, contract: list[str], qty: float, avg_cost: float) -> bytes:
    return frame(61, 3, account, *contract_fields(contract), qty, avg_cost)
