"""Our orders in alpaca-py's terms: the request type per order type, the time in force (MOC and
LOC are market and limit orders for the close), the side."""

from __future__ import annotations

from typing import Any

from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import (
    LimitOrderRequest,
    MarketOrderRequest,
    StopLimitOrderRequest,
    StopOrderRequest,
    TrailingStopOrderRequest,
)

from quantstrip.brokers.events import OrderRequest
from quantstrip.errors import ConfigError


def _tif(request: OrderRequest) -> TimeInForce:
    """Alpaca's time in force: MOC/LOC are market/limit orders for the close ('cls')."""
    if request.order_type in ("MOC", "LOC"):
        return TimeInForce.CLS
    tifs = {"DAY": TimeInForce.DAY, "GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC}
    tifs |= {"FOK": TimeInForce.FOK, "OPG": TimeInForce.OPG}
    if request.tif not in tifs:
        raise ConfigError(f"Alpaca has no {request.tif} time in force (use DAY, GTC, IOC, FOK)")
    return tifs[request.tif]


def _side(side: str) -> OrderSide:
    return OrderSide.BUY if side == "BUY" else OrderSide.SELL


def order_request(request: OrderRequest, **extra: Any) -> Any:
    """The alpaca-py request for one of our orders (`extra`: order_class, take_profit...)."""
    common = {
        "symbol": request.instrument.symbol,
        "qty": float(request.qty),
        "side": _side(request.side),
        "time_in_force": _tif(request),
        "client_order_id": request.client_order_id,
        **extra,
    }
    if request.order_type in ("MKT", "MOC"):
        return MarketOrderRequest(**common)
    if request.order_type in ("LMT", "LOC"):
        return LimitOrderRequest(limit_price=float(request.limit_price or 0), **common)
    if request.order_type == "STP":
        return StopOrderRequest(stop_price=float(request.stop_price or 0), **common)
    if request.order_type == "TRAIL":
        return TrailingStopOrderRequest(
            trail_price=float(request.trail_amount) if request.trail_amount else None,
            trail_percent=float(request.trail_percent) if request.trail_percent else None,
            **common,
        )
    return StopLimitOrderRequest(
        limit_price=float(request.limit_price or 0),
        stop_price=float(request.stop_price or 0),
        **common,
    )
