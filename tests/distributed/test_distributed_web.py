"""``dag-service web`` on Redis: the API in the process started, its orchestrator in a child process
(API load cannot delay transitions); a child that dies is started again; stopping web stops both."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Callable

import pytest
from distributed_support import Cluster, node, status, workflow
from http_support import submit, trigger

from bench.processes import terminate_group

CHILD = re.compile(r"orchestrator running in process (\d+)")


def children(log: str) -> list[int]:
    return [int(pid) for pid in CHILD.findall(log)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def completes(engine: Cluster) -> None:
    async with engine.client() as client:
        run_id = await trigger(client, await submit(client, workflow("w", [node("a", "whoami")])), {})
        await engine.wait_final([run_id], within=30)
        assert (await status(client, run_id))["state"] == "COMPLETED"


@pytest.mark.timeout(120)
async def test_web_runs_its_orchestrator_apart_restarts_it_and_stops_it(
    cluster: Callable[..., Cluster],
) -> None:
    # A restarted orchestrator takes its shards once the dead one's leases lapse (the visibility
    # timeout): short here.
    engine = cluster(VISIBILITY_TIMEOUT_SECONDS="2")
    web, _ = await engine.start_many(("web",), ("worker",))
    [first] = children(web.log())
    assert first != web.pid
    await completes(engine)

    os.kill(first, signal.SIGKILL)  # the orchestrator dies: web starts another
    deadline = time.monotonic() + 20
    while (
        len(children(web.log())) < 2 or "started orchestrator" not in web.log().split(f"process {first}")[-1]
    ):
        assert time.monotonic() < deadline, web.describe()
        await asyncio.sleep(0.05)
    second = children(web.log())[-1]
    assert alive(second) and web.running()
    await completes(engine)

    os.kill(web.pid, signal.SIGTERM)  # web alone is told: it stops its child
    deadline = time.monotonic() + 15
    while web.running() or alive(second):
        assert time.monotonic() < deadline, web.describe()
        await asyncio.sleep(0.05)
    assert web.popen.returncode == 0, web.describe()
    assert "Traceback" not in web.log(), web.describe()
    terminate_group(web.popen)  # nothing left, whatever happened above


@pytest.mark.timeout(60)
async def test_the_orchestrator_of_a_killed_web_stops_by_itself(cluster: Callable[..., Cluster]) -> None:
    engine = cluster()
    [web] = await engine.start_many(("web",))
    [child] = children(web.log())
    os.kill(web.pid, signal.SIGKILL)  # web alone: nothing can tell its child
    deadline = time.monotonic() + 15
    while alive(child):
        assert time.monotonic() < deadline, f"the orchestrator {child} outlived its web\n{web.describe()}"
        await asyncio.sleep(0.05)
    assert "the parent process" in web.log() and "is gone: stopping" in web.log(), web.describe()
    terminate_group(web.popen)
