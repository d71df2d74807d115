"""The worker's side of global concurrency limits (``domain.concurrency``): an attempt of a node with
a ``concurrency_key`` waits for a slot of its key before its handler runs, keeps it fresh while it
runs (with the worker's heartbeat), and gives it back when it ends.

While it waits, the attempt holds one of its worker's ``WORKER_CONCURRENCY`` places and its task
stays claimed (the heartbeat keeps it); it is not reported as started, so the orchestrator's
deadline for it counts from when its handler begins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping

from domain.errors import BackendError
from domain.ports import Clock, ConcurrencySlots

log = logging.getLogger(__name__)

MAX_POLL_SECONDS = 1.0


class SlotKeeper:
    def __init__(
        self,
        slots: ConcurrencySlots | None,
        clock: Clock,
        limits: Mapping[str, int],
        lease_seconds: float,
        poll_seconds: float,
    ) -> None:
        self._slots = slots
        self._clock = clock
        self.limits = limits
        self._lease = lease_seconds
        self._poll = poll_seconds
        self._held: set[tuple[str, str]] = set()
        self.waiting: set[str] = set()
        """Holders (attempts' idempotency keys) waiting for a slot."""

    @contextlib.asynccontextmanager
    async def held(self, key: str, limit: int, holder: str) -> AsyncIterator[None]:
        """Wait for a slot of ``key`` (first come first served), hold it, give it back. (A worker
        built without slots, in a test, runs without limits.)"""
        if self._slots is None:
            yield
            return
        self.waiting.add(holder)
        try:
            delay = self._poll
            while not await self._slots.acquire(key, holder, limit, self._clock.now(), self._lease):
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_POLL_SECONDS)
        except BaseException:
            await self._give_back(key, holder)  # its place in line
            raise
        finally:
            self.waiting.discard(holder)
        self._held.add((key, holder))
        try:
            yield
        finally:
            self._held.discard((key, holder))
            await self._give_back(key, holder)

    async def renew(self) -> None:
        """Keep the slots held fresh (called with the worker's heartbeat)."""
        now = self._clock.now()
        if self._slots is None:
            return
        for key, holder in list(self._held):
            await self._slots.renew(key, holder, now, self._lease)

    async def _give_back(self, key: str, holder: str) -> None:
        assert self._slots is not None
        try:
            await asyncio.shield(self._slots.release(key, holder))
        except BackendError as error:  # the lease frees it anyway; the attempt's outcome stands
            log.warning(
                "slot of concurrency key %r not given back (%s): it lapses with its lease", key, error
            )
