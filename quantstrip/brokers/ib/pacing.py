"""IB's historical-data pacing rules, kept in one place."""

from __future__ import annotations

from collections import deque
from typing import Any


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
