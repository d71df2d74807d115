"""The live queues (which a status answer needs, to name a queue no worker serves) are read at most
once a second, and callers that find the last read old share one read of the worker directory:
500 status reads answered at that moment each read it on a Redis connection of their own before,
and the API ran out of connections (a 503 to some of its users)."""

from __future__ import annotations

import asyncio

import pytest
from dependency_injector import providers

from domain.ports import WorkerAnnouncement
from services.application.workflows import WorkflowService
from services.container import Container

CALLERS = 200


class GatedDirectory:
    """A worker directory whose reads are held until ``release``; it counts them."""

    def __init__(self) -> None:
        self.reads = 0
        self.release = asyncio.Event()
        self.failing: Exception | None = None

    async def announce(self, announcement: WorkerAnnouncement, ttl_seconds: float) -> None:
        raise AssertionError("not announced to in these tests")

    async def withdraw(self, worker_id: str) -> None:
        raise AssertionError("not withdrawn from in these tests")

    async def live(self) -> list[WorkerAnnouncement]:
        self.reads += 1
        await asyncio.wait_for(self.release.wait(), 5)
        if self.failing is not None:
            raise self.failing
        return [WorkerAnnouncement("w1", frozenset({"default", "gpu"}), frozenset({"noop"}))]


@pytest.fixture
def directory() -> GatedDirectory:
    return GatedDirectory()


@pytest.fixture
def service(directory: GatedDirectory) -> WorkflowService:
    container = Container()
    container.backend.override("memory")
    container.workers_directory.override(providers.Object(directory))
    workflows: WorkflowService = container.workflows()
    return workflows


async def test_concurrent_callers_share_one_read(service: WorkflowService, directory: GatedDirectory) -> None:
    callers = [asyncio.ensure_future(service.live_queues()) for _ in range(CALLERS)]
    await asyncio.sleep(0)  # every caller has asked
    directory.release.set()
    answers = await asyncio.gather(*callers)
    assert directory.reads == 1
    assert set(answers) == {frozenset({"default", "gpu"})}
    assert await service.live_queues() == frozenset({"default", "gpu"})
    assert directory.reads == 1  # within the second: the read kept


async def test_a_caller_that_leaves_does_not_cancel_the_others_read(
    service: WorkflowService, directory: GatedDirectory
) -> None:
    leaving = asyncio.ensure_future(service.live_queues())
    staying = asyncio.ensure_future(service.live_queues())
    await asyncio.sleep(0)
    leaving.cancel()
    directory.release.set()
    assert await staying == frozenset({"default", "gpu"})
    assert leaving.cancelled()
    assert directory.reads == 1


async def test_a_failed_read_reaches_every_caller_and_the_next_call_reads_again(
    service: WorkflowService, directory: GatedDirectory
) -> None:
    directory.failing = ConnectionError("directory unreachable")
    callers = [asyncio.ensure_future(service.live_queues()) for _ in range(3)]
    await asyncio.sleep(0)
    directory.release.set()
    outcomes = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes)
    directory.failing = None
    assert await service.live_queues() == frozenset({"default", "gpu"})
    assert directory.reads == 2
