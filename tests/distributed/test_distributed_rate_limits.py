"""Rate limits against real ``dag-service api`` processes on one real Redis: a client past its
burst gets 429 with Retry-After (whole seconds), recovers after waiting that long, and the bucket is
shared by both API processes; health, readiness and metrics are never limited."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import httpx
import pytest
from distributed_support import LOOPBACK, Cluster
from test_distributed_idempotency import wait_healthy

from bench.processes import free_port

TOKENS = [{"name": "ci", "token": "ci-secret", "scopes": ["read"]}]
CI = {"authorization": "Bearer ci-secret"}


@pytest.mark.timeout(120)
async def test_a_limited_client_sees_429_and_recovers_on_either_replica(
    cluster: Callable[..., Cluster],
) -> None:
    engine = cluster(API_TOKENS=json.dumps(TOKENS), API_RATE_LIMIT_PER_SECOND="0.5", API_RATE_LIMIT_BURST="3")
    await engine.start_many(("api",))
    second_port = free_port()
    engine.start("api", API_PORT=str(second_port))
    await wait_healthy(f"http://{LOOPBACK}:{second_port}")
    async with (
        engine.client() as first,
        httpx.AsyncClient(base_url=f"http://{LOOPBACK}:{second_port}", timeout=30.0) as second,
    ):
        answers = [await api.get("/api/runs", headers=CI) for api in (first, second, first)]
        assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
        limited = await second.get("/api/runs", headers=CI)  # the burst was spent on both replicas
        assert limited.status_code == 429, limited.text
        assert limited.json()["error"]["code"] == "rate_limited"
        retry_after = int(limited.headers["retry-after"])
        assert 1 <= retry_after <= 2  # 0.5 per second: a request is back within 2 s
        assert (await first.get("/api/runs", headers=CI)).status_code == 429

        for path in ("/api/health", "/api/ready", "/api/metrics"):
            for api in (first, second, first, second):
                assert (await api.get(path, headers=CI)).status_code == 200, path
        assert (await first.get("/api/runs")).status_code == 401  # no token: refused before any bucket

        await asyncio.sleep(retry_after)
        deadline = time.monotonic() + 10
        while (recovered := await second.get("/api/runs", headers=CI)).status_code == 429:
            assert time.monotonic() < deadline, "the client never recovered"
            await asyncio.sleep(int(recovered.headers["retry-after"]))
        assert recovered.status_code == 200, recovered.text
