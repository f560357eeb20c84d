"""Property: whatever order fills, partial closes, flips, late commissions, duplicates and
corrections arrive in, the ledger's positions, realised PnL and commissions equal an independent
model (exact fractions, FIFO and average cost) to the cent; the incrementally kept rows equal a
full rebuild; every aggregate equals its recomputation."""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.aggregates import assert_aggregates_match

from quantstrip.db.handler import Database, ExecutionInput

T0 = 1_735_804_800  # 2025-01-02 08:00 UTC, as seconds
STRATEGIES = {"fifo_strategy": "fifo", "average_strategy": "average"}
INSTRUMENTS = {"AAPL": 1, "ES": 50}  # symbol: multiplier
CENT = Fraction(1, 100)


@dataclass(frozen=True)
class TrueFill:
    """One fill as the broker finally has it (its last version)."""

    number: int
    strategy: str
    symbol: str
    side: str
    qty: int
    price_cents: int
    fee_cents: int
    minute: int


fill_specs = st.tuples(
    st.sampled_from(sorted(STRATEGIES)),
    st.sampled_from(sorted(INSTRUMENTS)),
    st.sampled_from(["BUY", "SELL"]),
    st.integers(1, 40),
    st.integers(9_000, 11_000),
    st.integers(0, 300),
    # a correction: the broker re-sends the fill with another quantity, price and fee
    st.one_of(
        st.none(), st.tuples(st.integers(1, 40), st.integers(9_000, 11_000), st.integers(0, 300))
    ),
)


def when(minute: int) -> str:
    hours, minutes = divmod(minute, 60)
    return f"2025-01-{2 + hours // 24:02d}T{hours % 24:02d}:{minutes:02d}:00Z"


def model(fills: list[TrueFill]) -> tuple[dict, dict]:
    """Positions {(strategy, symbol): (qty, realised)} and fees {strategy: total}, exactly."""
    books: dict[tuple[str, str], list[list[Fraction]]] = {}  # lots of [signed qty, unit cost]
    realised: dict[tuple[str, str], Fraction] = {}
    fees: dict[str, Fraction] = {}
    for f in sorted(fills, key=lambda f: f.minute):
        key = (f.strategy, f.symbol)
        lots = books.setdefault(key, [])
        realised.setdefault(key, Fraction(0))
        fees[f.strategy] = fees.get(f.strategy, Fraction(0)) + f.fee_cents * CENT
        multiplier = INSTRUMENTS[f.symbol]
        price = f.price_cents * CENT
        signed = f.qty if f.side == "BUY" else -f.qty
        while signed and lots and (lots[0][0] > 0) != (signed > 0):
            lot = lots[0]
            matched = min(abs(signed), abs(lot[0]))
            direction = 1 if lot[0] > 0 else -1
            realised[key] += direction * (price - lot[1]) * matched * multiplier
            lot[0] -= direction * matched
            signed += direction * matched
            if lot[0] == 0:
                lots.pop(0)
        if signed:
            if STRATEGIES[f.strategy] == "average" and lots:
                held = lots[0][0]
                lots[0][1] = (lots[0][1] * abs(held) + price * abs(signed)) / abs(held + signed)
                lots[0][0] = held + signed
            else:
                lots.append([Fraction(signed), price])
    positions = {
        k: (sum((lot[0] for lot in v), Fraction(0)), realised[k]) for k, v in books.items()
    }
    return positions, fees


def arrivals(specs: list, rng: random.Random, duplicates: int) -> tuple[list, list[TrueFill]]:
    """The broker's messages in a random order, and the fills as they finally stand."""
    events, final = [], []
    for n, (strategy, symbol, side, qty, price, fee, correction) in enumerate(specs):
        base = f"0000e0d5.{n:08x}.01"
        versions = [(qty, price, fee)] + ([correction] if correction else [])
        for version, (v_qty, v_price, v_fee) in enumerate(versions, start=1):
            exec_id = f"{base}.{version:02x}"
            common = (strategy, symbol, side, v_qty, v_price, n * 7, base, version)
            events.append(("fill", exec_id, common))
            events.append(("fee", exec_id, v_fee))
        last = versions[-1]
        final.append(TrueFill(n, strategy, symbol, side, last[0], last[1], last[2], n * 7))
    events += [rng.choice(events) for _ in range(duplicates)]
    rng.shuffle(events)
    return events, final


def snapshot(db: Database) -> dict[str, list[tuple]]:
    queries = {
        "positions": "SELECT strategy_id, account_id, instrument_id, qty_micros, "
        "cost_basis_micros, avg_cost_micros, realized_pnl_micros FROM positions",
        "lots": "SELECT strategy_id, account_id, instrument_id, execution_id, open_time, "
        "qty_micros, price_micros, cost_basis_micros FROM position_lots",
        "events": "SELECT execution_id, qty_before_micros, qty_after_micros, "
        "cost_basis_before_micros, cost_basis_after_micros, realized_pnl_gross_micros, event_time "
        "FROM position_events",
        "closures": "SELECT closing_execution_id, opening_execution_id, direction, qty_micros, "
        "entry_time, entry_price_micros, exit_price_micros, realized_pnl_gross_micros "
        "FROM position_closures",
    }
    return {name: sorted(tuple(r) for r in db.query(sql)) for name, sql in queries.items()}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    specs=st.lists(fill_specs, min_size=1, max_size=30),
    seed=st.integers(0, 2**32 - 1),
    duplicates=st.integers(0, 6),
)
def test_any_arrival_order_gives_the_independent_models_positions_pnl_and_fees(
    tmp_path_factory: pytest.TempPathFactory, specs: list, seed: int, duplicates: int
) -> None:
    events, final = arrivals(specs, random.Random(seed), duplicates)
    with Database(tmp_path_factory.mktemp("model") / "q.db") as db:
        for name, method in STRATEGIES.items():
            db.ensure_strategy(name, position_method=method)
        instruments = {
            symbol: db.ensure_instrument(symbol, sec_type="STK" if m == 1 else "FUT", multiplier=m)
            for symbol, m in INSTRUMENTS.items()
        }
        for kind, exec_id, data in events:
            if kind == "fee":
                db.record_commission(broker="ib", exec_id=exec_id, commission=Decimal(data) / 100)
                continue
            strategy, symbol, side, qty, price, minute, base, version = data
            db.record_execution(
                ExecutionInput(
                    "ib",
                    "ACC",
                    exec_id,
                    strategy,
                    instruments[symbol],
                    side,
                    qty,
                    Decimal(price) / 100,
                    when(minute),
                    base_exec_id=base,
                    correction_number=version,
                )
            )

        positions, fees = model(final)
        names = {r[0]: r[1] for r in db.query("SELECT id, name FROM strategies")}
        symbols = {r[0]: r[1] for r in db.query("SELECT id, symbol FROM instruments")}
        stored = {
            (names[p.strategy_id], symbols[p.instrument_id]): (p.qty, p.realized_pnl)
            for p in db.positions(include_flat=True)
        }
        assert stored.keys() == positions.keys()
        for key, (qty, realised) in positions.items():
            assert stored[key][0] == qty, key
            assert abs(
                stored[key][1] - Decimal(realised.numerator) / realised.denominator
            ) < Decimal("0.005"), key
        stored_fees = {
            r[0]: Fraction(r[1], 1_000_000)
            for r in db.query(
                "SELECT s.name, SUM(c.commission_micros) FROM commissions c "
                "JOIN executions e ON e.id = c.execution_id AND e.superseded_by IS NULL "
                "JOIN strategies s ON s.id = e.strategy_id GROUP BY s.name"
            )
        }
        assert stored_fees == {k: v for k, v in fees.items()}
        net = {
            names[r[0]]: Fraction(r[1], 1_000_000)
            for r in db.query(
                "SELECT strategy_id, SUM(gross_micros - commission_micros) FROM agg_daily_pnl "
                "GROUP BY strategy_id"
            )
        }
        for strategy, total in net.items():
            expected = (
                sum((r for (s, _), (_, r) in positions.items() if s == strategy), Fraction(0))
                - fees[strategy]
            )
            assert abs(total - expected) < CENT / 2, strategy
        assert_aggregates_match(db)
        incremental = snapshot(db)
        db.rebuild_positions()
        assert snapshot(db) == incremental
        assert_aggregates_match(db)
