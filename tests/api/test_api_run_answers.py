"""The status routes of a run (the seed's ``GET /api/workflows/{id}``, ``GET /api/runs/{id}``) keep
their answer per revision of the run (``services/api/run_answers.py``), on memory and on Redis: a
strong ``ETag``, 304 for a request that names it, a new tag and body once the run has changed, the
kept bytes the same as a fresh build's, and no build at all for a read of a run that did not change.
Two API apps on one Redis agree."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from api_support import (
    ALLOWED_ORIGIN,
    POLL_LIMIT_SECONDS,
    client_for,
    make_settings,
    node,
    wait_final,
    workflow,
)
from dependency_injector import providers
from http_support import submit, trigger
from redis_support import RedisServer

from domain.events import NodeStarted
from services.api import create_app
from services.api.resource_schemas import run_detail
from services.api.seed_schemas import status_of
from services.application.run_view import run_view
from services.application.workflows import WorkflowService
from services.container import Container, close_backend, open_backend
from services.engine import EmbeddedEngine
from services.settings import Settings

ROUTES = ("/api/workflows/{}", "/api/runs/{}")


def a_run_to_completion() -> dict[str, Any]:
    return workflow("done", node("input", "input"), node("ask", "call_llm_service", ["input"]))


def a_run_that_waits_for_a_worker() -> dict[str, Any]:
    """Its second node is queued on a queue no worker serves: the run waits, unchanged, until it is
    cancelled."""
    definition = workflow("stuck", node("input", "input"), node("train", "call_llm_service", ["input"]))
    definition["dag"]["nodes"][1]["queue"] = "gpu"
    return definition


async def finished_run(client: httpx.AsyncClient) -> str:
    run_id = await trigger(client, await submit(client, a_run_to_completion()), {})
    await wait_final(client, run_id)
    return run_id


async def until(
    read: Callable[[], Awaitable[httpx.Response]], holds: Callable[[Any], bool]
) -> httpx.Response:
    """The first answer whose JSON satisfies ``holds``; fails after ``POLL_LIMIT_SECONDS``."""
    async with asyncio.timeout(POLL_LIMIT_SECONDS):
        while True:
            response = await read()
            assert response.status_code == 200, response.text
            if holds(response.json()):
                return response
            await asyncio.sleep(0.02)


async def waiting_run(client: httpx.AsyncClient) -> str:
    run_id = await trigger(client, await submit(client, a_run_that_waits_for_a_worker()), {})
    await until(
        lambda: client.get(f"/api/workflows/{run_id}"),
        lambda body: body["nodes"]["train"]["status"] == "QUEUED",
    )
    return run_id


def service_of(container: Container) -> WorkflowService:
    service: WorkflowService = container.workflows()
    return service


async def test_both_routes_answer_with_a_strong_etag_and_304_when_it_is_named(
    client: httpx.AsyncClient,
) -> None:
    run_id = await finished_run(client)
    tags = set()
    for route in ROUTES:
        url = route.format(run_id)
        first = await client.get(url)
        etag = first.headers["etag"]
        assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2, etag
        assert first.headers["cache-control"] == "no-cache"
        tags.add(etag)

        for named in (etag, f"W/{etag}", f'"something-else", {etag}', "*"):
            again = await client.get(url, headers={"if-none-match": named})
            assert again.status_code == 304, (named, again.text)
            assert again.content == b""
            assert again.headers["etag"] == etag
            assert "content-type" not in again.headers

        other = await client.get(url, headers={"if-none-match": '"something-else"'})
        assert other.status_code == 200
        assert other.content == first.content
        assert other.headers["etag"] == etag
    assert len(tags) == 2, "each route's answer has its own tag"


async def test_a_page_of_an_allowed_origin_may_read_the_etag(client: httpx.AsyncClient) -> None:
    run_id = await finished_run(client)
    response = await client.get(f"/api/runs/{run_id}", headers={"origin": ALLOWED_ORIGIN})
    assert "etag" in response.headers["access-control-expose-headers"].lower()


async def test_a_changed_run_has_a_new_etag_and_a_new_body(client: httpx.AsyncClient) -> None:
    run_id = await waiting_run(client)
    before = {route: await client.get(route.format(run_id)) for route in ROUTES}

    cancelled = await client.post(f"/api/runs/{run_id}/cancel")
    assert cancelled.status_code == 202, cancelled.text
    await until(lambda: client.get(f"/api/runs/{run_id}"), lambda body: body["status"] == "CANCELLED")

    for route, earlier in before.items():
        headers = {"if-none-match": earlier.headers["etag"]}
        after = await client.get(route.format(run_id), headers=headers)
        assert after.status_code == 200, "the tag of the run before the cancel names it no more"
        assert after.headers["etag"] != earlier.headers["etag"]
        assert after.content != earlier.content
        assert after.json()["nodes"]["train"]["status"] == "CANCELLED"


@pytest.mark.parametrize("make_run", [finished_run, waiting_run], ids=["finished", "waiting for a worker"])
async def test_kept_answers_are_the_bytes_a_fresh_build_gives(
    client: httpx.AsyncClient, container: Container, make_run: Callable[[httpx.AsyncClient], Awaitable[str]]
) -> None:
    """The bytes the routes built before answers were kept (the seed's exact shape), and the bytes
    of a second app, whose first read builds them again."""
    run_id = await make_run(client)
    service = service_of(container)
    run = await service.get_run(run_id, outputs=False)
    served = await service.queues_served(run)
    fresh = {
        ROUTES[0]: status_of(run_view(run, served)).model_dump_json().encode(),
        ROUTES[1]: run_detail(run_view(run, served)).model_dump_json().encode(),
    }
    async with client_for(create_app(container.workflows, make_settings())) as second:
        for route, expected in fresh.items():
            built = await client.get(route.format(run_id))
            kept = await client.get(route.format(run_id))
            rebuilt = await second.get(route.format(run_id))
            assert built.content == kept.content == rebuilt.content == expected
            assert built.headers["etag"] == kept.headers["etag"] == rebuilt.headers["etag"]


async def test_a_read_of_a_run_that_did_not_change_builds_nothing(
    client: httpx.AsyncClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = await waiting_run(client)
    service = service_of(container)
    reads: list[str] = []
    read_run = service.run_snapshot

    async def counted(run_id: str, *, outputs: bool = True) -> Any:
        reads.append(run_id)
        return await read_run(run_id, outputs=outputs)

    monkeypatch.setattr(service, "run_snapshot", counted)
    tags = {route: (await client.get(route.format(run_id))).headers["etag"] for route in ROUTES}
    reads.clear()

    for route, etag in tags.items():
        for headers in ({}, {"if-none-match": etag}):
            again = await client.get(route.format(run_id), headers=headers)
            assert again.status_code == (304 if headers else 200)
    assert reads == [], "reads of a run that did not change read only its revision"

    async with client_for(create_app(container.workflows, make_settings())) as second:
        assert (await second.get(ROUTES[0].format(run_id))).headers["etag"] == tags[ROUTES[0]]
    assert reads == [run_id], "another app's first read builds its answer"


# -- a run that changes all the time: its answer is built again at most so often ---------------------


async def started_train(container: Container, run_id: str, worker: str) -> None:
    """The waiting run's queued node reported started (by a worker of the test's name): the run
    changes (a commit, a new revision), its status does not."""
    await container.runs().apply([NodeStarted(run_id, "train", 1, worker, time.time())])


async def test_a_run_whose_status_holds_is_answered_from_its_answer_until_the_spacing_has_passed(
    client: httpx.AsyncClient, container: Container
) -> None:
    """Two apps read the run, then it changes with its status as it was: the one whose spacing has
    not passed answers what it kept (same tag: 304), the one with no spacing answers the change."""
    spaced_app = create_app(container.workflows, make_settings(api_status_rebuild_spacing=1e6))
    eager_app = create_app(container.workflows, make_settings(api_status_rebuild_spacing=0))
    run_id = await waiting_run(client)
    async with client_for(spaced_app) as spaced, client_for(eager_app) as eager:
        kept = {route: await spaced.get(route.format(run_id)) for route in ROUTES}
        for route in ROUTES:
            assert (await eager.get(route.format(run_id))).content == kept[route].content
        revision = await service_of(container).run_revision(run_id)

        await started_train(container, run_id, "worker-a")
        assert await service_of(container).run_revision(run_id) != revision, "the run changed"

        for route, earlier in kept.items():
            url = route.format(run_id)
            again = await spaced.get(url, headers={"if-none-match": earlier.headers["etag"]})
            assert again.status_code == 304, "within the spacing, its status as it was: the kept answer"
            assert (await spaced.get(url)).content == earlier.content
            now = await eager.get(url, headers={"if-none-match": earlier.headers["etag"]})
            assert now.status_code == 200, "no spacing: the change is answered at once"
            assert now.json()["nodes"]["train"]["status"] == "RUNNING"


async def test_a_change_of_the_run_status_is_answered_at_once_whatever_the_spacing(
    client: httpx.AsyncClient, container: Container
) -> None:
    async with client_for(
        create_app(container.workflows, make_settings(api_status_rebuild_spacing=1e6))
    ) as spaced:
        run_id = await waiting_run(client)
        kept = {route: await spaced.get(route.format(run_id)) for route in ROUTES}

        cancelled = await spaced.post(f"/api/runs/{run_id}/cancel")
        assert cancelled.status_code == 202, cancelled.text
        await until(lambda: client.get(f"/api/runs/{run_id}"), lambda body: body["status"] == "CANCELLED")

        for route, earlier in kept.items():
            after = await spaced.get(route.format(run_id), headers={"if-none-match": earlier.headers["etag"]})
            assert after.status_code == 200
            assert after.json()["nodes"]["train"]["status"] == "CANCELLED"


async def test_a_changed_run_is_answered_anew_once_the_spacing_has_passed(container: Container) -> None:
    async with client_for(
        create_app(container.workflows, make_settings(api_status_rebuild_spacing=1))
    ) as spaced:
        run_id = await waiting_run(spaced)
        await spaced.get(f"/api/runs/{run_id}")
        await started_train(container, run_id, "worker-a")
        seen = await until(
            lambda: spaced.get(f"/api/runs/{run_id}"),
            lambda body: body["nodes"]["train"]["status"] == "RUNNING",
        )
        assert seen.json()["nodes"]["train"]["worker_id"] == "worker-a"


async def test_a_run_that_is_not_stored_is_still_a_404(client: httpx.AsyncClient) -> None:
    for route in ROUTES:
        response = await client.get(route.format("no-such-run"), headers={"if-none-match": "*"})
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"


async def test_an_answer_after_a_wait_has_its_etag_too(client: httpx.AsyncClient) -> None:
    run_id = await finished_run(client)
    plain = await client.get(f"/api/workflows/{run_id}")

    waited = await client.get(f"/api/workflows/{run_id}", params={"wait": 5})
    named = await client.get(
        f"/api/runs/{run_id}", params={"wait": 5}, headers={"if-none-match": plain.headers["etag"]}
    )

    assert waited.content == plain.content and waited.headers["etag"] == plain.headers["etag"]
    assert named.status_code == 200, "another route's tag names another answer"


# -- two API apps on one Redis -------------------------------------------------------------------------


@pytest.fixture
async def two_apps(redis_server: RedisServer) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two API apps, each with its own container (clients, caches) on one Redis and key prefix, as
    two API processes behind one address; the engine runs beside the first."""
    settings = Settings(redis_url=redis_server.url, redis_key_prefix=f"answers-{uuid.uuid4().hex[:10]}")
    containers = []
    for _ in range(2):
        container = Container()
        container.backend.override("redis")
        container.settings.override(providers.Object(settings))
        containers.append(container)
    try:
        for container in containers:
            await open_backend(container)
        async with (
            EmbeddedEngine(containers[0], workers=2),
            client_for(create_app(containers[0].workflows, make_settings())) as one,
            client_for(create_app(containers[1].workflows, make_settings())) as other,
        ):
            yield one, other
    finally:
        for container in containers:
            await close_backend(container)


async def test_two_apps_on_one_redis_agree_and_see_each_others_changes(
    two_apps: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    one, other = two_apps
    run_id = await waiting_run(one)
    before = {}
    for route in ROUTES:
        url = route.format(run_id)
        before[route] = first = await one.get(url)
        seen = await other.get(url, headers={"if-none-match": first.headers["etag"]})
        assert seen.status_code == 304, "the other app gives the same tag for the same answer"
        assert (await other.get(url)).content == first.content

    cancelled = await other.post(f"/api/runs/{run_id}/cancel")  # committed by the engine beside one
    assert cancelled.status_code == 202, cancelled.text
    await until(lambda: one.get(f"/api/runs/{run_id}"), lambda body: body["status"] == "CANCELLED")

    for route, earlier in before.items():
        url = route.format(run_id)
        now = await other.get(url, headers={"if-none-match": earlier.headers["etag"]})
        assert now.status_code == 200, "the other app kept the answer before the cancel: it is stale"
        assert now.json()["nodes"]["train"]["status"] == "CANCELLED"
        assert now.content == (await one.get(url)).content
        assert (await one.get(url, headers={"if-none-match": now.headers["etag"]})).status_code == 304
