"""Scoped tokens against a real ``dag-service`` API process on a real Redis: a token without the
scope a route needs is refused 403 naming the scope (for each scope), and the names of the tokens
that started and cancelled a run are on the run and in its history."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from distributed_support import Cluster

TOKENS = [
    {"name": "admin", "token": "admin-secret", "scopes": ["read", "run", "admin"]},
    {"name": "runner", "token": "runner-secret", "scopes": ["read", "run"]},
    {"name": "ops", "token": "ops-secret", "scopes": ["run", "read"]},
    {"name": "reader", "token": "reader-secret", "scopes": ["read"]},
    {"name": "blind", "token": "blind-secret", "scopes": ["run", "admin"]},
]
SLOW = {
    "name": "slow",
    "dag": {"nodes": [{"id": "a", "handler": "whoami", "dependencies": [], "config": {"sleep_seconds": 60}}]},
}


def bearer(name: str) -> dict[str, str]:
    return {"authorization": f"Bearer {name}-secret"}


def refused(response: httpx.Response, scope: str) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "forbidden"
    assert f"'{scope}'" in error["message"], error


async def history(client: httpx.AsyncClient, run_id: str, name: str) -> list[dict[str, Any]]:
    """Every entry of the run's event stream (it closes after the entry that ends the run)."""
    entries = []
    async with client.stream("GET", f"/api/runs/{run_id}/events", headers=bearer(name)) as stream:
        async for line in stream.aiter_lines():
            if line.startswith("data:"):
                entries.append(json.loads(line.removeprefix("data:")))
    return entries


@pytest.mark.timeout(120)
async def test_scopes_refuse_naming_the_scope_and_runs_record_who(cluster: Callable[..., Cluster]) -> None:
    engine = cluster(API_TOKENS=json.dumps(TOKENS))
    await engine.start_many(("api",), ("orchestrator",), ("worker",))
    async with engine.client() as client:
        refused(await client.post("/api/definitions", json=SLOW, headers=bearer("runner")), "admin")
        refused(await client.post("/api/workflow", json=SLOW, headers=bearer("reader")), "admin")
        registered = await client.post("/api/definitions", json=SLOW, headers=bearer("admin"))
        assert registered.status_code == 201, registered.text
        definition_id = registered.json()["definition_id"]

        start = {"definition_id": definition_id, "input": {}}
        refused(await client.post("/api/runs", json=start, headers=bearer("reader")), "run")
        refused(await client.post(f"/api/workflow/trigger/{definition_id}", headers=bearer("reader")), "run")
        started = await client.post("/api/runs", json=start, headers=bearer("runner"))
        assert started.status_code == 201, started.text
        run_id = started.json()["run_id"]

        refused(await client.get(f"/api/runs/{run_id}", headers=bearer("blind")), "read")
        refused(await client.get(f"/api/workflows/{run_id}", headers=bearer("blind")), "read")
        refused(await client.post(f"/api/runs/{run_id}/cancel", headers=bearer("reader")), "run")
        assert (await client.get("/api/runs/x", headers={"authorization": "Bearer nope"})).status_code == 401

        deadline = time.monotonic() + 30
        while (await client.get(f"/api/runs/{run_id}", headers=bearer("reader"))).json()[
            "status"
        ] != "RUNNING":
            assert time.monotonic() < deadline, "the run never started"
            await asyncio.sleep(0.05)
        cancelled = await client.post(f"/api/runs/{run_id}/cancel", headers=bearer("ops"))
        assert cancelled.status_code == 202, cancelled.text

        entries = await history(client, run_id, "reader")
        view = (await client.get(f"/api/runs/{run_id}", headers=bearer("reader"))).json()
    assert (view["status"], view["started_by"], view["cancelled_by"]) == ("CANCELLED", "runner", "ops")
    by_kind = {entry["kind"]: entry for entry in entries}
    assert by_kind["run_started"]["by"] == "runner"
    assert by_kind["cancel_requested"]["by"] == "ops"
    assert by_kind["cancel_requested"]["run_status"] == "CANCELLED"
    recorded = {"run_started", "cancel_requested"}
    assert all("by" not in entry for entry in entries if entry["kind"] not in recorded)
