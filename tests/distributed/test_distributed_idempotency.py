"""Idempotent starts across API replicas: two ``dag-service api`` processes on one Redis, eight
clients (four on each) starting a run with the same Idempotency-Key at once: exactly one run exists,
every client got its id, and it completes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest
from distributed_support import LOOPBACK, Cluster, status
from http_support import submit

from bench.processes import free_port

DEFINITION = {"name": "replicated", "dag": {"nodes": [{"id": "a", "handler": "input", "dependencies": []}]}}


async def wait_healthy(url: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=url, timeout=2.0) as client:
        while True:
            try:
                if (await client.get("/api/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{url} never answered"
            await asyncio.sleep(0.05)


@pytest.mark.timeout(120)
async def test_one_run_for_one_key_across_two_api_replicas(cluster: Callable[..., Cluster]) -> None:
    engine = cluster()
    await engine.start_many(("api",), ("orchestrator",), ("worker",))
    second_port = free_port()
    engine.start("api", API_PORT=str(second_port))
    second_url = f"http://{LOOPBACK}:{second_port}"
    await wait_healthy(second_url)
    body = {"workflow": "replicated", "input": {"order": 1}}
    async with engine.client() as first, httpx.AsyncClient(base_url=second_url, timeout=30.0) as second:
        await submit(first, DEFINITION)
        answers = await asyncio.gather(
            *(
                api.post("/api/runs", json=body, headers={"Idempotency-Key": "order-1"})
                for api in (first, second) * 4
            )
        )
        assert sorted(a.status_code for a in answers) == [200] * 7 + [201], [a.text for a in answers]
        run_ids = {a.json()["run_id"] for a in answers}
        assert len(run_ids) == 1
        listed = (await second.get("/api/runs", params={"workflow": "replicated"})).json()["items"]
        assert [item["run_id"] for item in listed] == list(run_ids)
        (run_id,) = run_ids
        deadline = time.monotonic() + 30
        while (await status(first, run_id))["state"] != "COMPLETED":
            assert time.monotonic() < deadline, "the run did not complete"
            await asyncio.sleep(0.05)


@pytest.mark.timeout(120)
async def test_one_version_for_one_key_across_two_api_replicas(cluster: Callable[..., Cluster]) -> None:
    engine = cluster()
    await engine.start_many(("api",))
    second_port = free_port()
    engine.start("api", API_PORT=str(second_port))
    second_url = f"http://{LOOPBACK}:{second_port}"
    await wait_healthy(second_url)
    headers = {"Idempotency-Key": "deploy-7"}
    async with engine.client() as first, httpx.AsyncClient(base_url=second_url, timeout=30.0) as second:
        answers = await asyncio.gather(
            *(api.post("/api/definitions", json=DEFINITION, headers=headers) for api in (first, second) * 4)
        )
        assert sorted(a.status_code for a in answers) == [200] * 7 + [201], [a.text for a in answers]
        assert len({a.json()["definition_id"] for a in answers}) == 1
        assert {a.json()["version"] for a in answers} == {1}
        other = {**DEFINITION, "description": "changed"}
        refused = await second.post("/api/workflow", json=other, headers=headers)
        assert refused.status_code == 409 and "deploy-7" in refused.json()["error"]["message"]
        listed = (await first.get("/api/definitions", params={"name": "replicated"})).json()["items"]
        assert [item["version"] for item in listed] == [1]
        assert (await second.post("/api/definitions", json=DEFINITION)).status_code == 201
        after = (await first.get("/api/definitions", params={"name": "replicated"})).json()["items"]
        assert sorted(item["version"] for item in after) == [1, 2]  # the counter took one version
