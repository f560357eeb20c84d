"""Parameter grids from the command line: `-p fast=5,10,20 -p slow=50:200:25`.

A value list is comma separated; `start:stop:step` is an inclusive range (50:200:25 gives 50,
75, ..., 200), integer when all three are integers. Values are typed as a user would mean them:
integers, then floats, then true/false, otherwise text. The grid is the cartesian product of the
axes in the order given; `sample(n, seed)` draws n distinct points from it reproducibly.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from quantstrip.errors import ValidationError

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_RANGE_POINTS = 10_000
Value = int | float | bool | str


@dataclass(frozen=True)
class Axis:
    name: str
    values: tuple[Value, ...]


def typed(text: str) -> Value:
    text = text.strip()
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _range(name: str, spec: str) -> tuple[Value, ...]:
    parts = spec.split(":")
    if len(parts) != 3:
        raise ValidationError(name, f"a range is start:stop:step, got {spec!r}")
    try:
        start, stop, step = (Decimal(p.strip()) for p in parts)
    except InvalidOperation:
        raise ValidationError(name, f"range bounds must be numbers, got {spec!r}") from None
    if step <= 0:
        raise ValidationError(name, f"range step must be positive, got {spec!r}")
    if stop < start:
        raise ValidationError(name, f"range stop is below its start in {spec!r}")
    count = int((stop - start) / step) + 1
    if count > MAX_RANGE_POINTS:
        raise ValidationError(
            name, f"range {spec!r} has {count} points (at most {MAX_RANGE_POINTS})"
        )
    integral = all(p == p.to_integral_value() for p in (start, stop, step))
    points = [start + step * i for i in range(count)]
    return tuple(int(p) if integral else float(p) for p in points)


def parse_axis(spec: str) -> Axis:
    """One `-p name=values` option."""
    name, sep, values = spec.partition("=")
    name = name.strip()
    if not sep or not values.strip():
        raise ValidationError("parameter", f"expected name=values, got {spec!r}")
    if not NAME.match(name):
        raise ValidationError("parameter", f"{name!r} is not a valid parameter name")
    if ":" in values and "," not in values:
        points = _range(name, values)
    else:
        points = tuple(typed(v) for v in values.split(",") if v.strip())
    if not points:
        raise ValidationError(name, "no values")
    if len(set(map(repr, points))) != len(points):
        raise ValidationError(name, f"repeated values in {values!r}")
    return Axis(name, points)


def parse_axes(specs: list[str], symbols: str | list[str] | None = None) -> list[Axis]:
    axes = [parse_axis(spec) for spec in specs]
    if symbols:
        names = symbols.split(",") if isinstance(symbols, str) else list(symbols)
        names = [s.strip() for s in names if s.strip()]
        axes.append(Axis("symbol", tuple(names)))
    seen: set[str] = set()
    for axis in axes:
        if axis.name in seen:
            raise ValidationError(axis.name, "given twice (use one -p per parameter)")
        seen.add(axis.name)
    return axes


def from_mapping(grid: dict[str, Any]) -> list[Axis]:
    """The Python form: {"fast": [5, 10], "slow": range(50, 201, 25), "symbol": "SPY"}."""
    axes = []
    for name, values in grid.items():
        if not NAME.match(str(name)):
            raise ValidationError("parameter", f"{name!r} is not a valid parameter name")
        if isinstance(values, str) or not hasattr(values, "__iter__"):
            values = [values]
        points = tuple(values)
        if not points:
            raise ValidationError(str(name), "no values")
        axes.append(Axis(str(name), points))
    return axes


def expand(axes: list[Axis]) -> list[dict[str, Value]]:
    names = [a.name for a in axes]
    return [
        dict(zip(names, combo, strict=True))
        for combo in itertools.product(*(a.values for a in axes))
    ]


def sample(points: list[dict[str, Value]], n: int | None, seed: int) -> list[dict[str, Value]]:
    """`n` distinct points drawn with `seed` (all of them, in grid order, when n is None or
    covers the grid); the draw keeps grid order so tables read naturally."""
    if n is None or n >= len(points):
        return points
    if n <= 0:
        raise ValidationError("sample", f"must be positive, got {n}")
    chosen = sorted(random.Random(seed).sample(range(len(points)), n))
    return [points[i] for i in chosen]
