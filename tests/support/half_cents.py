"""A ledger whose totals land exactly on half cents, where float rounding goes astray.

Binary floats hold 8,061.275 and -2.675 just below their ties and 0.125 exactly on one, so
Python's round() gives 8,061.27, -2.67 and 0.12; money rounds half up: 8,061.28, -2.68, 0.13.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from quantstrip.db.handler import Database, ExecutionInput

# strategy: (buy price, sell price, qty, commission per fill or None)
CASES = {
    "tie_up": ("100", "180.61275", 100, None),
    "binary_tie": ("10", "10.125", 1, None),
    "negative_tie": ("10", "9.97325", 100, None),
    "fee_tie": ("50", "60", 10, "0.0025"),
}
# (net, commission) per strategy, rounded half up to the cent
EXPECTED = {
    "tie_up": (Decimal("8061.28"), Decimal("0.00")),
    "binary_tie": (Decimal("0.13"), Decimal("0.00")),
    "negative_tie": (Decimal("-2.68"), Decimal("0.00")),
    "fee_tie": (Decimal("100.00"), Decimal("0.01")),  # 99.995 net, 0.005 commission
}


def build(path: Path) -> Path:
    with Database(path) as db:
        for n, (strategy, (buy, sell, qty, fee)) in enumerate(CASES.items()):
            instrument = db.ensure_instrument(f"SYM{n}")
            for side, price, day in (("BUY", buy, "03"), ("SELL", sell, "04")):
                exec_id = f"{strategy}-{side}"
                db.record_execution(
                    ExecutionInput(
                        "sim",
                        "HALF",
                        exec_id,
                        strategy,
                        instrument,
                        side,
                        qty,
                        price,
                        f"2025-03-{day}T15:00:00Z",
                    )
                )
                if fee is not None:
                    db.record_commission(broker="sim", exec_id=exec_id, commission=fee)
    return path
