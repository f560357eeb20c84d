"""Alpaca's market-data API (StockHistoricalDataClient): the last trade as a mark, and bars."""

from __future__ import annotations

from datetime import datetime

from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest, StockLatestTradeRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from quantstrip.brokers.events import Bar, InstrumentSpec, decimal, utc
from quantstrip.brokers.marks import MarkEvent
from quantstrip.errors import ConfigError, NotFoundError

BAR_SIZES = {
    "1 min": TimeFrame(1, TimeFrameUnit.Minute),
    "5 mins": TimeFrame(5, TimeFrameUnit.Minute),
    "15 mins": TimeFrame(15, TimeFrameUnit.Minute),
    "30 mins": TimeFrame(30, TimeFrameUnit.Minute),
    "1 hour": TimeFrame(1, TimeFrameUnit.Hour),
    "1 day": TimeFrame(1, TimeFrameUnit.Day),
    "1 week": TimeFrame(1, TimeFrameUnit.Week),
}


def latest_mark(
    client: StockHistoricalDataClient, broker: str, instrument: InstrumentSpec
) -> MarkEvent | None:
    """The symbol's last trade as a mark; None when Alpaca has none. HTTP errors raise."""
    trades = client.get_stock_latest_trade(
        StockLatestTradeRequest(symbol_or_symbols=instrument.symbol)
    )
    trade = trades.get(instrument.symbol) if isinstance(trades, dict) else None
    if trade is None or not trade.price:
        return None
    return MarkEvent(
        broker, instrument, decimal(trade.price, "price"), utc(trade.timestamp), "alpaca"
    )


def bars(
    client: StockHistoricalDataClient,
    instrument: InstrumentSpec,
    start: datetime | None,
    end: datetime | None,
    bar_size: str,
) -> list[Bar]:
    """Bars of one symbol; an empty answer is an error naming what was asked, not a list."""
    timeframe = BAR_SIZES.get(bar_size)
    if timeframe is None:
        raise ConfigError(f"bar_size: expected one of {sorted(BAR_SIZES)}, got {bar_size!r}")
    response = client.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols=instrument.symbol, timeframe=timeframe, start=start, end=end
        )
    )
    rows = response.data.get(instrument.symbol, []) if hasattr(response, "data") else []
    if not rows:
        raise NotFoundError(
            f"Alpaca returned no {bar_size} bars for {instrument.symbol} between {start} and {end}"
        )
    return [
        Bar(
            utc(row.timestamp),
            decimal(row.open, "open"),
            decimal(row.high, "high"),
            decimal(row.low, "low"),
            decimal(row.close, "close"),
            decimal(row.volume, "volume"),
        )
        for row in rows
    ]
