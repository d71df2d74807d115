"""Idempotent starts through the API on both backends: a start repeated with the same key and body
answers the first run (200), another body under the key is a 409 naming it, and eight clients
racing with one key start exactly one run."""

from __future__ import annotations

import asyncio

import httpx
from api_support import assert_error, node, workflow
from http_support import submit

DEFINITION = workflow("idempotent", node("a", "input"))


async def test_a_repeated_start_answers_the_first_run(client: httpx.AsyncClient) -> None:
    await submit(client, DEFINITION)
    body = {"workflow": "idempotent", "input": {"order": 17}}
    headers = {"Idempotency-Key": "order-17"}
    first = await client.post("/api/runs", json=body, headers=headers)
    again = await client.post("/api/runs", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200), (first.text, again.text)
    assert again.json()["run_id"] == first.json()["run_id"]
    assert again.headers["location"] == first.headers["location"]

    other = await client.post("/api/runs", json={**body, "input": {"order": 18}}, headers=headers)
    error = assert_error(other, 409, "idempotency_key_reused")
    assert "order-17" in error["message"] and first.json()["run_id"] in error["message"]

    fresh = await client.post("/api/runs", json=body, headers={"Idempotency-Key": "order-18"})
    assert fresh.status_code == 201 and fresh.json()["run_id"] != first.json()["run_id"]
    without = await client.post("/api/runs", json=body)
    assert without.status_code == 201 and without.json()["run_id"] != first.json()["run_id"]


async def test_the_seed_trigger_takes_a_request_id_or_the_header(client: httpx.AsyncClient) -> None:
    execution_id = await submit(client, DEFINITION)
    route = f"/api/workflow/trigger/{execution_id}"
    first = await client.post(route, json={"input": {"n": 1}, "request_id": "req-1"})
    again = await client.post(route, json={"input": {"n": 1}}, headers={"Idempotency-Key": "req-1"})
    assert first.status_code == again.status_code == 200
    assert first.json()["instance_id"] == again.json()["instance_id"]
    assert_error(
        await client.post(route, json={"input": {"n": 2}, "request_id": "req-1"}),
        409,
        "idempotency_key_reused",
    )
    mismatch = await client.post(route, json={"request_id": "a"}, headers={"Idempotency-Key": "b"})
    assert [d["path"] for d in assert_error(mismatch, 400, "invalid_input")["details"]] == ["$.request_id"]


async def test_a_key_that_is_not_printable_ascii_is_refused_naming_where(client: httpx.AsyncClient) -> None:
    await submit(client, DEFINITION)
    body = {"workflow": "idempotent", "input": {}}
    too_long = await client.post("/api/runs", json=body, headers={"Idempotency-Key": "k" * 201})
    assert [d["path"] for d in assert_error(too_long, 400, "invalid_input")["details"]] == [
        "Idempotency-Key header"
    ]


async def test_eight_clients_racing_with_one_key_start_one_run(client: httpx.AsyncClient) -> None:
    await submit(client, DEFINITION)
    body = {"workflow": "idempotent", "input": {"order": 99}}
    answers = await asyncio.gather(
        *(client.post("/api/runs", json=body, headers={"Idempotency-Key": "race"}) for _ in range(8))
    )
    assert sorted(a.status_code for a in answers) == [200] * 7 + [201], [a.text for a in answers]
    assert len({a.json()["run_id"] for a in answers}) == 1
    listed = (await client.get("/api/runs", params={"workflow": "idempotent"})).json()["items"]
    assert len(listed) == 1


async def test_registering_unchanged_content_with_if_changed_answers_the_newest_version(
    client: httpx.AsyncClient,
) -> None:
    first = await client.post("/api/definitions", json=DEFINITION)
    same = await client.post("/api/definitions", params={"if_changed": "true"}, json=DEFINITION)
    assert same.json()["definition_id"] == first.json()["definition_id"]
    assert same.json()["version"] == first.json()["version"]
    seed_same = await client.post("/api/workflow", params={"if_changed": "true"}, json=DEFINITION)
    assert seed_same.json()["execution_id"] == first.json()["definition_id"]
    changed = {**DEFINITION, "description": "now with a description"}
    new = await client.post("/api/definitions", params={"if_changed": "true"}, json=changed)
    assert new.json()["version"] == first.json()["version"] + 1
    again = await client.post("/api/definitions", json=changed)  # without it: always a new version
    assert again.json()["version"] == first.json()["version"] + 2
