"""Idempotent registration through the API on both backends: the same key and body answer the
version the first registration made (200), another body under the key is a 409 naming it, and eight
clients racing with one key register exactly one version."""

from __future__ import annotations

import asyncio

import httpx
from api_support import assert_error, node, workflow

DEFINITION = workflow("registered-once", node("a", "input"))
OTHER = workflow("registered-once", node("a", "input"), node("b", "input"))


async def test_a_repeated_registration_answers_the_first_version(client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "deploy-1"}
    first = await client.post("/api/definitions", json=DEFINITION, headers=headers)
    again = await client.post("/api/definitions", json=DEFINITION, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200), (first.text, again.text)
    assert again.json() == first.json()
    seed = await client.post("/api/workflow", json=DEFINITION, headers=headers)
    assert seed.status_code == 200 and seed.json()["execution_id"] == first.json()["definition_id"]

    other = await client.post("/api/definitions", json=OTHER, headers=headers)
    error = assert_error(other, 409, "idempotency_key_reused")
    assert "deploy-1" in error["message"] and first.json()["definition_id"] in error["message"]
    assert_error(
        await client.post("/api/workflow", json=OTHER, headers=headers), 409, "idempotency_key_reused"
    )

    fresh = await client.post("/api/definitions", json=DEFINITION, headers={"Idempotency-Key": "deploy-2"})
    assert fresh.status_code == 201 and fresh.json()["version"] == 2
    listed = (await client.get("/api/definitions", params={"name": "registered-once"})).json()["items"]
    assert sorted(item["version"] for item in listed) == [1, 2]


async def test_eight_clients_racing_with_one_key_register_one_version(client: httpx.AsyncClient) -> None:
    answers = await asyncio.gather(
        *(
            client.post("/api/definitions", json=DEFINITION, headers={"Idempotency-Key": "race"})
            for _ in range(8)
        )
    )
    assert sorted(a.status_code for a in answers) == [200] * 7 + [201], [a.text for a in answers]
    assert len({a.json()["definition_id"] for a in answers}) == 1
    listed = (await client.get("/api/definitions", params={"name": "registered-once"})).json()["items"]
    assert [item["version"] for item in listed] == [1]
