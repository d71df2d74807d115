"""The token bucket's arithmetic for the in-memory limiter (``lua/rate_limit.lua`` does the same in
Redis, where it must run inside Redis to be atomic across API processes). Rate limiting is not a
workflow rule: it lives with the adapters."""

from __future__ import annotations

BucketState = tuple[float, float]
"""(requests left, when that was counted)."""


def refill_and_take(
    state: BucketState | None, now: float, rate: float, burst: int
) -> tuple[BucketState, float]:
    """The bucket after one request at ``now``, and 0.0 (taken) or the seconds until one is there."""
    left, at = state if state is not None else (float(burst), now)
    left = min(float(burst), left + max(0.0, now - at) * rate)
    if left >= 1.0:
        return (left - 1.0, now), 0.0
    return (left, now), (1.0 - left) / rate
