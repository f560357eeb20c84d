"""Walk-forward windows: `train=12M,test=3M` (optionally `step=1M`, `anchored`).

Each fold is a train window followed at once by a test window. Rolling folds move the whole
pair by `step` (default: the test length, so test windows tile the period); anchored folds keep
the train start at the beginning of the period and grow it. Lengths are a number and a unit: D
(days), W (weeks), M (months) or Y (years). Only folds whose test window ends inside the period
are kept: a shorter last test would not compare with the others.

Every run simulates the whole period once; in-sample and out-of-sample figures are the same
run's metrics restricted to each window (the portfolio report's custom horizon), so a sweep
with windows costs no more runs than one without.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd

from quantstrip.errors import ValidationError

LENGTH = re.compile(r"^(\d+)\s*([DWMY])$", re.IGNORECASE)
MAX_FOLDS = 500


@dataclass(frozen=True)
class Fold:
    number: int
    train_start: date
    train_end: date  # inclusive
    test_start: date
    test_end: date  # inclusive


@dataclass(frozen=True)
class WalkForward:
    train: str
    test: str
    step: str | None = None
    anchored: bool = False

    @property
    def text(self) -> str:
        parts = [f"train={self.train}", f"test={self.test}"]
        if self.step:
            parts.append(f"step={self.step}")
        if self.anchored:
            parts.append("anchored")
        return ",".join(parts)

    def folds(self, start: date, end: date) -> list[Fold]:
        train, test = offset(self.train), offset(self.test)
        step = offset(self.step) if self.step else test
        folds: list[Fold] = []
        origin = pd.Timestamp(start)
        for k in range(MAX_FOLDS + 1):
            shift = origin + step * k if k else origin
            train_start = origin if self.anchored else shift
            test_start = shift + train
            test_stop = test_start + test
            if (test_stop - timedelta(days=1)).date() > end:
                break
            if k == MAX_FOLDS:
                raise ValidationError("windows", f"more than {MAX_FOLDS} folds: use a longer step")
            folds.append(
                Fold(
                    number=k + 1,
                    train_start=train_start.date(),
                    train_end=(test_start - timedelta(days=1)).date(),
                    test_start=test_start.date(),
                    test_end=(test_stop - timedelta(days=1)).date(),
                )
            )
        if not folds:
            raise ValidationError(
                "windows",
                f"{self.text} does not fit in {start} to {end}: no complete train and test window",
            )
        return folds


def offset(text: str) -> pd.DateOffset:
    match = LENGTH.match(text.strip())
    if not match:
        raise ValidationError("windows", f"a length is a number and D, W, M or Y, got {text!r}")
    count, unit = int(match.group(1)), match.group(2).upper()
    if count <= 0:
        raise ValidationError("windows", f"a length must be positive, got {text!r}")
    return {
        "D": pd.DateOffset(days=count),
        "W": pd.DateOffset(weeks=count),
        "M": pd.DateOffset(months=count),
        "Y": pd.DateOffset(years=count),
    }[unit]


def parse(spec: str) -> WalkForward:
    values: dict[str, str] = {}
    anchored = False
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        if part.lower() == "anchored":
            anchored = True
            continue
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in ("train", "test", "step"):
            raise ValidationError(
                "windows", f"expected train=..,test=..[,step=..][,anchored], got {part!r}"
            )
        offset(value)  # validates
        values[key] = value.strip().upper()
    if "train" not in values or "test" not in values:
        raise ValidationError("windows", "both train= and test= are needed, e.g. train=12M,test=3M")
    return WalkForward(values["train"], values["test"], values.get("step"), anchored)
