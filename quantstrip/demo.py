"""Demo history: three strategies traded through SimBroker on generated bars.

Gives a new workspace real content (fills, round trips, positions, signals, snapshots) so the
monitor, SQL editor and reports have something true to show on first start. Bars are geometric
Brownian motion from a fixed seed: nothing is downloaded, and the same seed gives the same
database.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

from quantstrip import clock
from quantstrip.brokers.events import (
    Bar,
    BracketRequest,
    ExecutionEvent,
    InstrumentSpec,
    OrderRequest,
)
from quantstrip.brokers.recorder import Recorder
from quantstrip.brokers.sim import SimBroker
from quantstrip.db.connection import transaction
from quantstrip.db.handler import Database

# symbol: (start price, annual drift, annual volatility)
SYMBOLS = {
    "SPY": (450.0, 0.08, 0.16),
    "AAPL": (180.0, 0.12, 0.28),
    "MSFT": (370.0, 0.10, 0.25),
    "XOM": (105.0, 0.04, 0.24),
    "TLT": (95.0, 0.00, 0.14),
    "GLD": (185.0, 0.05, 0.13),
}
STRATEGIES = {
    "ma_crossover": "10/30-day moving-average crossover, long only, SPY, AAPL and MSFT",
    "mean_reversion": "Buys 1.2-sigma dips in MSFT, XOM, AAPL, GLD with a bracket (+4% / -3%)",
    "momentum_rotation": "Holds the best 20-day performer of SPY, TLT, GLD; rotates every 10 days",
}
CLOSE_UTC = time(21, 0)  # 16:00 New York, as UTC in winter


@dataclass(frozen=True)
class DemoSummary:
    days: int
    executions: int
    strategies: int


def business_days(end: date, count: int) -> list[date]:
    days: list[date] = []
    day = end
    while len(days) < count:
        if day.weekday() < 5:
            days.append(day)
        day -= timedelta(days=1)
    return days[::-1]


def generate_bars(symbols: dict[str, tuple[float, float, float]], days: list[date], seed: int):
    """Daily OHLCV bars per symbol from geometric Brownian motion (deterministic for a seed)."""
    rng = random.Random(seed)
    bars: dict[str, list[Bar]] = {}
    for symbol, (start, drift, vol) in symbols.items():
        price, series = start, []
        dt = 1 / 252
        for day in days:
            open_ = price * math.exp(rng.gauss(0, vol * math.sqrt(dt) * 0.3))
            close = open_ * math.exp(
                (drift - vol * vol / 2) * dt + vol * math.sqrt(dt) * rng.gauss(0, 1)
            )
            high = max(open_, close) * (1 + abs(rng.gauss(0, vol * math.sqrt(dt) * 0.5)))
            low = min(open_, close) * (1 - abs(rng.gauss(0, vol * math.sqrt(dt) * 0.5)))
            volume = int(rng.uniform(2e6, 8e6))
            when = datetime.combine(day, CLOSE_UTC, tzinfo=UTC)
            series.append(
                Bar(
                    when,
                    Decimal(f"{open_:.2f}"),
                    Decimal(f"{high:.2f}"),
                    Decimal(f"{low:.2f}"),
                    Decimal(f"{close:.2f}"),
                    Decimal(volume),
                )
            )
            price = close
        bars[symbol] = series
    return bars


class DemoBook:
    """Positions per strategy as the strategies see them (from their own fills)."""

    def __init__(self) -> None:
        self.qty: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        self.pending: set[tuple[str, str]] = set()

    def on_event(self, event: object) -> None:
        if isinstance(event, ExecutionEvent) and event.strategy:
            signed = event.qty if event.side == "BUY" else -event.qty
            self.qty[(event.strategy, event.instrument.symbol)] += signed


def build_demo(db_path: str | Path, *, seed: int = 7, years: int = 2, end: date | None = None):
    """Simulate the demo strategies into `db_path`; returns a summary."""
    days = business_days(end or clock.today() - timedelta(days=1), 252 * years)
    bars = generate_bars(SYMBOLS, days, seed)
    specs = {s: InstrumentSpec(s, primary_exchange="ARCA") for s in SYMBOLS}
    broker = SimBroker(
        account="DEMO", seed=seed, starting_cash=1_000_000, slippage_bps=1, session="demo"
    )
    broker.risk = None  # replaying history, not trading: the operator's controls do not apply
    book = DemoBook()
    with Database(db_path) as db:
        for name, description in STRATEGIES.items():
            db.ensure_strategy(name, description=description)
        recorder = Recorder(db, client_name="demo")
        broker.subscribe(recorder)
        broker.subscribe(book.on_event)
        closes: dict[str, deque[Decimal]] = {s: deque(maxlen=60) for s in SYMBOLS}
        with transaction(db.conn):
            for index, day in enumerate(days):
                for symbol in SYMBOLS:
                    bar = bars[symbol][index]
                    broker.on_bar(symbol, bar)
                    closes[symbol].append(bar.close)
                broker.snapshot_marks(list(specs.values()))  # the day's closes value positions
                when = datetime.combine(day, CLOSE_UTC, tzinfo=UTC)
                _ma_crossover(broker, book, db, specs, closes, when)
                _mean_reversion(broker, book, db, specs, closes, when)
                if index % 10 == 0:
                    _momentum_rotation(broker, book, db, specs, closes, when)
                if index % 5 == 4:
                    recorder.handle(broker.snapshot())
        count = db.conn.execute("SELECT COUNT(*) FROM executions").fetchone()[0]
    return DemoSummary(days=len(days), executions=int(count), strategies=len(STRATEGIES))


def _sma(values: deque[Decimal], n: int) -> Decimal | None:
    if len(values) < n:
        return None
    return sum(list(values)[-n:], Decimal(0)) / n


def _ma_crossover(broker, book, db, specs, closes, when) -> None:
    for symbol in ("SPY", "AAPL", "MSFT"):
        fast, slow = _sma(closes[symbol], 10), _sma(closes[symbol], 30)
        if fast is None or slow is None:
            continue
        held = book.qty[("ma_crossover", symbol)]
        want_long = fast > slow
        if want_long and held == 0:
            db.insert_strategy_event(
                "ma_crossover", symbol, "signal", 1.0, {"fast": fast, "slow": slow}, when
            )
            broker.submit(
                OrderRequest(
                    specs[symbol], "BUY", 100, strategy="ma_crossover", client_name="ma_crossover"
                )
            )
        elif not want_long and held > 0:
            db.insert_strategy_event(
                "ma_crossover", symbol, "signal", -1.0, {"fast": fast, "slow": slow}, when
            )
            broker.submit(
                OrderRequest(
                    specs[symbol], "SELL", held, strategy="ma_crossover", client_name="ma_crossover"
                )
            )


def _mean_reversion(broker, book, db, specs, closes, when) -> None:
    for symbol in ("MSFT", "XOM", "AAPL", "GLD"):
        window = list(closes[symbol])[-20:]
        if len(window) < 20 or book.qty[("mean_reversion", symbol)] != 0:
            continue
        if any(
            o.strategy == "mean_reversion" and o.instrument.symbol == symbol
            for o in broker.open_orders()
        ):
            continue
        mean = sum(window, Decimal(0)) / 20
        var = sum(((x - mean) ** 2 for x in window), Decimal(0)) / 19
        z = (window[-1] - mean) / var.sqrt() if var > 0 else Decimal(0)
        if z < Decimal("-1.2"):
            price = window[-1]
            db.insert_strategy_event(
                "mean_reversion", symbol, "zscore", float(z), {"close": price}, when
            )
            entry = OrderRequest(
                specs[symbol],
                "BUY",
                50,
                "LMT",
                limit_price=(price * Decimal("1.002")).quantize(Decimal("0.01")),
                strategy="mean_reversion",
                client_name="mean_reversion",
            )
            broker.submit_bracket(
                BracketRequest(
                    entry,
                    take_profit_price=(price * Decimal("1.04")).quantize(Decimal("0.01")),
                    stop_loss_price=(price * Decimal("0.97")).quantize(Decimal("0.01")),
                )
            )


def _momentum_rotation(broker, book, db, specs, closes, when) -> None:
    universe = ("SPY", "TLT", "GLD")
    scores = {}
    for symbol in universe:
        window = list(closes[symbol])
        if len(window) >= 21:
            scores[symbol] = window[-1] / window[-21] - 1
    if len(scores) < len(universe):
        return
    best = max(scores, key=lambda s: scores[s])
    db.insert_strategy_event(
        "momentum_rotation",
        best,
        "rotation",
        float(scores[best]),
        {k: str(v) for k, v in scores.items()},
        when,
    )
    for symbol in universe:
        held = book.qty[("momentum_rotation", symbol)]
        if symbol != best and held > 0:
            broker.submit(
                OrderRequest(
                    specs[symbol],
                    "SELL",
                    held,
                    strategy="momentum_rotation",
                    client_name="momentum_rotation",
                )
            )
    if book.qty[("momentum_rotation", best)] == 0:
        qty = int(Decimal(100_000) / closes[best][-1])
        broker.submit(
            OrderRequest(
                specs[best],
                "BUY",
                qty,
                strategy="momentum_rotation",
                client_name="momentum_rotation",
            )
        )
