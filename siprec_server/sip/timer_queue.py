"""Earliest-deadline bookkeeping for many timed objects, with lazy invalidation.

An object is (re)scheduled after anything that may move its deadline; heap entries whose deadline no longer
matches the object's `get_timer()` are stale and skipped.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, Protocol, TypeVar


class Timed(Protocol):
    def get_timer(self) -> float | None: ...


T = TypeVar("T", bound=Timed)


class TimerQueue(Generic[T]):
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._deadlines: dict[int, float] = {}  # id(object) → deadline of its live entry
        self._order = itertools.count()

    def schedule(self, item: T) -> None:
        deadline = item.get_timer()
        if deadline is None:
            self._deadlines.pop(id(item), None)
        elif self._deadlines.get(id(item)) != deadline:
            self._deadlines[id(item)] = deadline
            heapq.heappush(self._heap, (deadline, next(self._order), item))

    def discard(self, item: T) -> None:
        self._deadlines.pop(id(item), None)

    def next_deadline(self) -> float | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> T | None:
        """The object with the earliest deadline if that deadline has passed; it must be rescheduled after."""
        self._drop_stale()
        if not self._heap or self._heap[0][0] > now:
            return None
        _, _, item = heapq.heappop(self._heap)
        del self._deadlines[id(item)]
        return item

    def _drop_stale(self) -> None:
        while self._heap:
            deadline, _, item = self._heap[0]
            if self._deadlines.get(id(item)) == deadline and item.get_timer() == deadline:
                return
            heapq.heappop(self._heap)
