"""A map over the HTTP API (embedded engine): the run view counts its items, the items route pages
through them, the results routes give the map's whole list, and misuses are clear 4xx answers."""

from __future__ import annotations

import httpx
from api_support import assert_error, load_example, wait_final
from http_support import submit, trigger


async def finished_map_run(client: httpx.AsyncClient, urls: list[str]) -> str:
    definition = load_example("map")
    instance_id = await trigger(client, await submit(client, definition), {"urls": urls})
    status = await wait_final(client, instance_id)
    assert status["state"] == "COMPLETED", status
    return instance_id


async def test_items_are_counted_paged_and_given_whole_in_the_results(client: httpx.AsyncClient) -> None:
    urls = [f"u{i}" for i in range(5)]
    run_id = await finished_map_run(client, urls)
    fetch = (await client.get(f"/api/runs/{run_id}")).json()["nodes"]["fetch"]
    assert fetch["items"]["total"] == 5 and fetch["items"]["completed"] == 5

    first = (await client.get(f"/api/runs/{run_id}/nodes/fetch/items", params={"limit": 2})).json()
    assert [item["index"] for item in first["items"]] == [0, 1]
    assert first["next_offset"] == 2
    assert all(item["status"] == "COMPLETED" and item["attempts"] == 1 for item in first["items"])
    assert first["items"][1]["output"]["url"] == "u1"
    last = (await client.get(f"/api/runs/{run_id}/nodes/fetch/items", params={"offset": 4})).json()
    assert [item["index"] for item in last["items"]] == [4] and last["next_offset"] is None

    results = (await client.get(f"/api/runs/{run_id}/results")).json()["results"]
    assert [page["url"] for page in results["fetch"]] == urls
    seed = (await client.get(f"/api/workflows/{run_id}/results")).json()["results"]
    assert seed["fetch"] == results["fetch"]


async def test_the_items_of_a_node_that_is_no_map_or_does_not_exist_are_refused(
    client: httpx.AsyncClient,
) -> None:
    run_id = await finished_map_run(client, ["u0"])
    assert_error(await client.get(f"/api/runs/{run_id}/nodes/report/items"), 400, "bad_request")
    assert_error(await client.get(f"/api/runs/{run_id}/nodes/nope/items"), 404, "not_found")
    response = await client.get(f"/api/runs/{run_id}/nodes/fetch/items", params={"limit": 5000})
    assert response.status_code == 422
