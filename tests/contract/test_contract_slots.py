"""Concurrency slots (``domain.ports.ConcurrencySlots``) on every backend: the limit holds, slots go
first come first served, a holder that stops renewing loses its slot, a waiter that stops asking
loses its place, and giving back is idempotent."""

from __future__ import annotations

import asyncio

from contract_support import Backend

LEASE = 10.0
T0 = 1_000.0


async def test_at_most_limit_holders_and_a_holder_asking_again_keeps_its_slot(backend: Backend) -> None:
    slots = backend.slots
    assert await slots.acquire("k", "a", 2, T0, LEASE)
    assert await slots.acquire("k", "b", 2, T0, LEASE)
    assert not await slots.acquire("k", "c", 2, T0, LEASE)
    assert await slots.acquire("k", "a", 2, T0 + 1, LEASE)  # its own, renewed
    assert await slots.holders("k", T0 + 1) == 2
    assert await slots.acquire("other", "c", 1, T0, LEASE)  # keys are apart


async def test_a_freed_slot_goes_to_whoever_asked_first(backend: Backend) -> None:
    slots = backend.slots
    assert await slots.acquire("k", "a", 1, T0, LEASE)
    assert not await slots.acquire("k", "first", 1, T0 + 1, LEASE)
    assert not await slots.acquire("k", "second", 1, T0 + 2, LEASE)
    await slots.release("k", "a")
    assert not await slots.acquire("k", "second", 1, T0 + 3, LEASE)  # first is ahead in line
    assert await slots.acquire("k", "first", 1, T0 + 3, LEASE)
    await slots.release("k", "first")
    await slots.release("k", "first")  # again: nothing happens
    assert await slots.acquire("k", "second", 1, T0 + 4, LEASE)


async def test_a_lapsed_holder_or_waiter_gives_way(backend: Backend) -> None:
    slots = backend.slots
    assert await slots.acquire("k", "dead", 1, T0, LEASE)
    assert not await slots.acquire("k", "gone", 1, T0 + 1, LEASE)  # then stops asking
    await slots.renew("k", "dead", T0 + 5, LEASE)  # alive until T0 + 15
    assert not await slots.acquire("k", "late", 1, T0 + 14, LEASE)
    # "dead" no longer renews, "gone" no longer asks: both lapse; "late" gets the slot.
    assert await slots.acquire("k", "late", 1, T0 + 16, LEASE)
    assert await slots.holders("k", T0 + 16) == 1


async def test_concurrent_askers_never_exceed_the_limit(backend: Backend) -> None:
    other = await backend.connect()  # another worker's connection
    granted = await asyncio.gather(
        *(
            (backend if n % 2 else other).slots.acquire("k", f"w{n}", 3, T0 + n / 100, LEASE)
            for n in range(20)
        )
    )
    assert sum(granted) == 3
    assert await backend.slots.holders("k", T0 + 1) == 3
