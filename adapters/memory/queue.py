"""An at-least-once message queue inside one process."""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Sequence

from domain.ports import Delivery


class InMemoryQueue[T]:
    """``domain.ports.MessageQueue`` over a deque. Received messages stay pending until acked."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self._ready: deque[T] = deque()
        self._pending: dict[str, T] = {}
        self._arrived = asyncio.Event()
        self._receipts = itertools.count(1)

    async def send(self, messages: Sequence[T]) -> None:
        if messages:
            self._ready.extend(messages)
            self._arrived.set()

    async def receive(self, consumer: str, max_count: int, block_seconds: float) -> list[Delivery[T]]:
        if not self._ready:
            self._arrived.clear()
            try:
                async with asyncio.timeout(block_seconds):
                    await self._arrived.wait()
            except TimeoutError:
                return []
        ready, pending, receipts = self._ready, self._pending, self._receipts
        batch = []
        for _ in range(min(max_count, len(ready))):
            message = ready.popleft()
            receipt = str(next(receipts))
            pending[receipt] = message
            batch.append(Delivery(message, receipt))
        return batch

    async def ack(self, deliveries: Sequence[Delivery[T]]) -> None:
        for delivery in deliveries:
            self._pending.pop(delivery.receipt, None)

    async def extend(self, consumer: str, deliveries: Sequence[Delivery[T]]) -> None:
        """Nothing to do: in one process nobody else could take a pending message."""

    async def maintain(self) -> None:
        """Nothing to do: acknowledged messages are already gone."""

    async def stream_stats(self) -> list[tuple[str, int, int, int | None]]:
        """(name, messages held, pending, not yet delivered): the Redis queue's shape, for metrics."""
        return [(self.name, len(self._ready) + len(self._pending), len(self._pending), len(self._ready))]

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def ready_count(self) -> int:
        return len(self._ready)
