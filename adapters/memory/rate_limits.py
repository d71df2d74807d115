"""Token buckets held in this process (the memory backend: one API process)."""

from __future__ import annotations

from adapters.rate_buckets import BucketState, refill_and_take


class InMemoryRateLimiter:
    """``domain.ports.RateLimiter`` in a dictionary."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = burst
        self._buckets: dict[str, BucketState] = {}

    async def take(self, key: str, now: float) -> float:
        state, wait = refill_and_take(self._buckets.get(key), now, self._rate, self._burst)
        self._buckets[key] = state
        return wait
