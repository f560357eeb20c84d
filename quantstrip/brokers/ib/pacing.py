"""Historical data: IB's pacing rules, the inputs a request accepts, the bars it answers."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from quantstrip import clock
from quantstrip.brokers.events import Bar
from quantstrip.errors import ValidationError

log = logging.getLogger(__name__)


class HistoricalPacer:
    """IB's historical-data pacing: no identical request within 15 s, at most 60 per 600 s."""

    def __init__(self, identical_s: float = 15.0, window_s: float = 600.0, limit: int = 60) -> None:
        self.identical_s, self.window_s, self.limit = identical_s, window_s, limit
        self.recent: deque[float] = deque()
        self.last_by_key: dict[tuple[Any, ...], float] = {}

    def wait_time(self, key: tuple[Any, ...], now: float) -> float:
        while self.recent and now - self.recent[0] > self.window_s:
            self.recent.popleft()
        wait = 0.0
        if key in self.last_by_key:
            wait = max(wait, self.identical_s - (now - self.last_by_key[key]))
        if len(self.recent) >= self.limit:
            wait = max(wait, self.window_s - (now - self.recent[0]))
        return max(wait, 0.0)

    def record(self, key: tuple[Any, ...], now: float) -> None:
        self.recent.append(now)
        self.last_by_key[key] = now

    def wait(self, key: tuple[Any, ...]) -> None:
        """Sleep as long as the pacing rules require before sending `key`, then count it."""
        delay = self.wait_time(key, clock.monotonic())
        if delay > 0:
            log.info("IB historical-data pacing: waiting %.1fs", delay)
            time.sleep(delay)
        self.record(key, clock.monotonic())


def require_aware(**moments: datetime | None) -> None:
    for name, moment in moments.items():
        if moment is not None and moment.tzinfo is None:
            raise ValidationError(name, f"must be timezone-aware, got naive {moment}")


def to_bars(rows: Sequence[Any], start: datetime | None) -> list[Bar]:
    """ib_async's BarData as canonical bars in UTC, those before `start` dropped."""
    out = []
    for row in rows:
        moment = (
            row.date
            if isinstance(row.date, datetime)
            else datetime.combine(row.date, datetime.min.time())
        )
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        if start and moment < start:
            continue
        out.append(Bar(moment, row.open, row.high, row.low, row.close, max(row.volume, 0)))
    return out
