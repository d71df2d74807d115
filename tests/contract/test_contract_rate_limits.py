"""The rate limit's token buckets on every backend: a burst is allowed at once, the next request
is told how long to wait, the bucket refills at the rate, and buckets are per key (and, on Redis,
shared by every process on the store)."""

from __future__ import annotations

import pytest
from contract_support import T0, Backend


@pytest.mark.contract_settings(api_rate_limit_per_second=2.0, api_rate_limit_burst=3)
async def test_a_burst_then_waits_at_the_rate(backend: Backend) -> None:
    limiter = backend.rate_limiter
    assert [await limiter.take("ci", T0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert await limiter.take("ci", T0) == pytest.approx(0.5)
    assert await limiter.take("other", T0) == 0.0  # a bucket per key
    assert await limiter.take("ci", T0 + 0.25) == pytest.approx(0.25)
    assert await limiter.take("ci", T0 + 0.5) == 0.0  # refilled one request in half a second
    assert await limiter.take("ci", T0 + 0.5) == pytest.approx(0.5)
    assert [await limiter.take("ci", T0 + 100) for _ in range(3)] == [0.0] * 3  # full again, never more
    assert await limiter.take("ci", T0 + 100) > 0


@pytest.mark.contract_settings(api_rate_limit_per_second=1.0, api_rate_limit_burst=2)
async def test_processes_on_one_store_share_a_bucket(backend: Backend) -> None:
    other = await backend.connect()
    assert await backend.rate_limiter.take("shared", T0) == 0.0
    assert await other.rate_limiter.take("shared", T0) == 0.0
    assert await backend.rate_limiter.take("shared", T0) == pytest.approx(1.0)
