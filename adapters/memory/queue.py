"""An at-least-once message queue inside one process, routed to named queues (worker pools)."""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from typing import Self

from domain.messages import DEFAULT_QUEUE
from domain.ports import Delivery


class InMemoryQueue[T]:
    """``domain.ports.MessageQueue`` over a deque per named queue. Received messages stay pending
    until acked. ``route`` names a message's queue (every message goes to the default one unless
    given); a consumer receives from the queues it ``serving``."""

    def __init__(
        self,
        name: str = "memory",
        route: Callable[[T], str] | None = None,
        queues: Sequence[str] = (DEFAULT_QUEUE,),
    ) -> None:
        self.name = name
        self.queues = tuple(dict.fromkeys(queues))
        self._route = route
        self._ready: defaultdict[str, deque[T]] = defaultdict(deque)
        self._pending: dict[str, T] = {}
        self._waiting: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        """Per queue: the receives blocked on it (each woken by a message to any queue it serves)."""
        self._receipts = itertools.count(1)

    def serving(self, queues: Sequence[str]) -> Self:
        """A consumer's view receiving from ``queues`` only; the messages and receipts are shared."""
        if tuple(dict.fromkeys(queues)) == self.queues:
            return self
        view = copy.copy(self)  # shares the deques, pending messages and waiters
        view.queues = tuple(dict.fromkeys(queues))
        return view

    async def send(self, messages: Sequence[T]) -> None:
        route, ready = self._route, self._ready
        for message in messages:
            queue = DEFAULT_QUEUE if route is None else route(message)
            ready[queue].append(message)
            for waiter in self._waiting.get(queue, ()):
                waiter.set()

    def _has_ready(self) -> bool:
        ready = self._ready
        return any(ready.get(queue) for queue in self.queues)

    async def receive(self, consumer: str, max_count: int, block_seconds: float) -> list[Delivery[T]]:
        if not self._has_ready():
            arrived = asyncio.Event()
            for queue in self.queues:
                self._waiting[queue].add(arrived)
            try:
                async with asyncio.timeout(block_seconds):
                    await arrived.wait()
            except TimeoutError:
                return []
            finally:
                for queue in self.queues:
                    self._waiting[queue].discard(arrived)
        pending, receipts = self._pending, self._receipts
        batch: list[Delivery[T]] = []
        for queue in self.queues:
            ready = self._ready.get(queue)
            while ready and len(batch) < max_count:
                message = ready.popleft()
                receipt = str(next(receipts))
                pending[receipt] = message
                batch.append(Delivery(message, receipt))
        return batch

    async def ack(self, deliveries: Sequence[Delivery[T]]) -> None:
        for delivery in deliveries:
            self._pending.pop(delivery.receipt, None)

    async def requeue(self, deliveries: Sequence[Delivery[T]]) -> None:
        """Back at the end of their queues for another consumer (one step: nothing in between)."""
        held = [self._pending.pop(d.receipt) for d in deliveries if d.receipt in self._pending]
        await self.send(held)

    async def extend(self, consumer: str, deliveries: Sequence[Delivery[T]]) -> None:
        """Nothing to do: in one process nobody else could take a pending message."""

    async def maintain(self) -> None:
        """Nothing to do: acknowledged messages are already gone."""

    async def stream_stats(self) -> list[tuple[str, int, int, int | None]]:
        """(name, messages held, pending, not yet delivered): the Redis queue's shape, for metrics."""
        ready = sum(len(messages) for messages in self._ready.values())
        return [(self.name, ready + len(self._pending), len(self._pending), ready)]

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def ready_count(self) -> int:
        return sum(len(messages) for messages in self._ready.values())
