"""Retry timers in a heap."""

from __future__ import annotations

import heapq
import itertools

from domain.events import RetryDue


class InMemoryTimerStore:
    """``domain.ports.TimerStore`` ordered by due time."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, RetryDue]] = []
        self._order = itertools.count()

    async def schedule(self, event: RetryDue, due_at: float) -> None:
        heapq.heappush(self._heap, (due_at, next(self._order), event))

    async def pop_due(self, now: float, max_count: int) -> list[RetryDue]:
        due: list[RetryDue] = []
        while self._heap and self._heap[0][0] <= now and len(due) < max_count:
            due.append(heapq.heappop(self._heap)[2])
        return due

    async def next_due_at(self) -> float | None:
        return self._heap[0][0] if self._heap else None
