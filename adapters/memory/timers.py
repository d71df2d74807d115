"""Timers (retries, attempt deadlines) in a heap, fired onto the in-memory event bus."""

from __future__ import annotations

import heapq
import itertools

from adapters.memory.queue import InMemoryQueue
from domain.events import Event
from domain.outbox import Timer


class InMemoryTimerStore:
    """``domain.ports.TimerStore`` ordered by due time."""

    def __init__(self, events: InMemoryQueue[Event]) -> None:
        self._events = events
        self._heap: list[tuple[float, int, Event]] = []
        self._order = itertools.count()

    def schedule(self, timer: Timer) -> None:
        heapq.heappush(self._heap, (timer.due_at, next(self._order), timer.event))

    async def fire_due(self, now: float, max_count: int) -> float | None:
        due: list[Event] = []
        while self._heap and self._heap[0][0] <= now and len(due) < max_count:
            due.append(heapq.heappop(self._heap)[2])
        await self._events.send(due)
        return await self.next_due_at()

    async def next_due_at(self) -> float | None:
        return self._heap[0][0] if self._heap else None
