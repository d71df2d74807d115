"""The seed's submit and trigger calls, shared by the tests that drive an API over HTTP."""

from __future__ import annotations

from typing import Any

import httpx


async def submit(client: httpx.AsyncClient, definition: dict[str, Any]) -> str:
    response = await client.post("/api/workflow", json=definition)
    assert response.status_code == 200, response.text
    execution_id: str = response.json()["execution_id"]
    return execution_id


async def trigger(client: httpx.AsyncClient, execution_id: str, run_input: dict[str, Any]) -> str:
    response = await client.post(f"/api/workflow/trigger/{execution_id}", json={"input": run_input})
    assert response.status_code == 200, response.text
    instance_id: str = response.json()["instance_id"]
    return instance_id
