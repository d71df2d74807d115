"""Concurrency slots held in this process (the memory backend: one process runs every worker)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class _Key:
    holders: dict[str, float] = field(default_factory=dict)
    """Holder -> when its lease lapses."""
    waiters: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Waiter -> (when it first asked, when its place lapses), in the order they asked."""


class InMemoryConcurrencySlots:
    """``domain.ports.ConcurrencySlots`` in dictionaries."""

    def __init__(self) -> None:
        self._keys: dict[str, _Key] = {}

    async def acquire(self, key: str, holder: str, limit: int, now: float, lease_seconds: float) -> bool:
        state = self._keys.setdefault(key, _Key())
        _drop_lapsed(state, now)
        if holder in state.holders:
            state.holders[holder] = now + lease_seconds
            return True
        asked, _ = state.waiters.get(holder, (now, 0.0))
        state.waiters[holder] = (asked, now + lease_seconds)
        free = limit - len(state.holders)
        ahead = sum(1 for other, (first, _) in state.waiters.items() if (first, other) < (asked, holder))
        if ahead >= free:
            return False
        del state.waiters[holder]
        state.holders[holder] = now + lease_seconds
        return True

    async def renew(self, key: str, holder: str, now: float, lease_seconds: float) -> None:
        state = self._keys.get(key)
        if state is not None and holder in state.holders:
            state.holders[holder] = now + lease_seconds

    async def release(self, key: str, holder: str) -> None:
        state = self._keys.get(key)
        if state is None:
            return
        state.holders.pop(holder, None)
        state.waiters.pop(holder, None)
        if not state.holders and not state.waiters:
            del self._keys[key]

    async def holders(self, key: str, now: float) -> int:
        state = self._keys.get(key)
        if state is None:
            return 0
        _drop_lapsed(state, now)
        return len(state.holders)


def _drop_lapsed(state: _Key, now: float) -> None:
    for holder in [h for h, until in state.holders.items() if until <= now]:
        del state.holders[holder]
    for waiter in [w for w, (_, until) in state.waiters.items() if until <= now]:
        del state.waiters[waiter]
