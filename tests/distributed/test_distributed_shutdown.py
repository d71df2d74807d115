"""Process hygiene: SIGTERM ends a process that holds no work at once, even while Redis is down; a
worker holding an attempt it cannot finish within SHUTDOWN_GRACE_SECONDS hands it back; an idle
process makes few Redis commands (counted on a redis-server of its own)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from distributed_support import Cluster, EngineProcess, node, status, workflow
from http_support import submit, trigger

from bench.idle_cost import calls_between, command_calls
from bench.processes import terminate_group

ROLES = ("worker", "orchestrator", "api", "web")
EXIT_WITHIN_SECONDS = 8.0
"""A process that holds nothing exits well within this after SIGTERM (its longest wait is a blocking
read of at most 1 s, or a refused connection to a Redis that is gone)."""


async def wait_for_log(process: EngineProcess, text: str, within: float) -> None:
    deadline = time.monotonic() + within
    while text not in process.log():
        assert process.running(), process.describe()
        assert time.monotonic() < deadline, f"{process.name} never logged {text!r}\n{process.describe()}"
        await asyncio.sleep(0.05)


async def exit_time(process: EngineProcess, within: float) -> float:
    """SIGTERM, then the seconds until the process exited (fails after ``within``)."""
    started = time.monotonic()
    terminate_group(process.popen)
    while process.running():
        elapsed = time.monotonic() - started
        assert elapsed < within, (
            f"{process.name} still running {elapsed:.1f} s after SIGTERM\n{process.describe()}"
        )
        await asyncio.sleep(0.05)
    return time.monotonic() - started


@pytest.mark.timeout(120)
async def test_sigterm_during_a_redis_outage_ends_every_idle_process_at_once(
    cluster: Callable[..., Cluster],
) -> None:
    engine, web_engine = cluster(), cluster()  # web serves the API too: on a port of its own
    processes = await engine.start_many(("worker",), ("orchestrator",), ("api",))
    processes += await web_engine.start_many(("web",))
    engine.redis_server.kill()
    web_engine.redis_server.kill()
    # The worker and the orchestrator are riding out the outage (the API notices nothing while idle).
    for process in [*processes[:2], processes[3]]:
        await wait_for_log(process, "retrying until the backend answers", within=15.0)
    times = await asyncio.gather(*(exit_time(process, EXIT_WITHIN_SECONDS) for process in processes))
    for process, seconds in zip(processes, times, strict=True):
        assert process.popen.returncode == 0, process.describe()
        assert "Traceback" not in process.log(), process.describe()
        print(f"{process.name}: exited {seconds:.2f} s after SIGTERM")


@pytest.mark.timeout(120)
async def test_a_worker_hands_back_an_attempt_it_cannot_finish_within_the_grace(
    cluster: Callable[..., Cluster],
) -> None:
    engine = cluster()
    api, _ = await engine.start_many(("api",), ("orchestrator",), within=60.0)
    worker = engine.start("worker", SHUTDOWN_GRACE_SECONDS="1.5")
    await engine.wait_serving(worker, 60.0)
    async with engine.client() as client:
        definition = workflow("long", [node("slow", "whoami", sleep_seconds=120)])
        run_id = await trigger(client, await submit(client, definition), {})
        deadline = time.monotonic() + 30.0
        while (await status(client, run_id))["nodes"]["slow"]["status"] != "RUNNING":
            assert time.monotonic() < deadline, await status(client, run_id)
            await asyncio.sleep(0.1)
        seconds = await exit_time(worker, 1.5 + EXIT_WITHIN_SECONDS)
        assert seconds >= 1.4, f"exited after {seconds:.2f} s: it did not wait for the attempt"
        assert worker.popen.returncode == 0, worker.describe()
        assert "handing back 1 attempt(s)" in worker.log(), worker.describe()
        # Handed back: still pending in the task stream for another worker to take over.
        assert engine.pending_tasks() == 1
        assert (await status(client, run_id))["nodes"]["slow"]["status"] == "RUNNING"
    assert api.running()


@pytest.mark.timeout(120)
async def test_an_idle_process_makes_few_redis_commands(cluster: Callable[..., Cluster]) -> None:
    """Each role alone on a redis-server of its own: every command counted is that process's."""
    engines = [cluster() for _ in ROLES]
    processes = [engine.start(role) for engine, role in zip(engines, ROLES, strict=True)]  # own ports
    await asyncio.gather(
        *(engine.wait_serving(process, 60.0) for engine, process in zip(engines, processes, strict=True))
    )
    await asyncio.sleep(2.0)  # past the start-up's one-off calls (groups, first lease take)
    before = [command_calls(engine.redis) for engine in engines]
    started = time.monotonic()
    await asyncio.sleep(4.0)  # the measurement window: commands counted, not time
    after = [command_calls(engine.redis) for engine in engines]
    elapsed = time.monotonic() - started
    for role, first, last in zip(ROLES, before, after, strict=True):
        calls = calls_between(first, last)
        rate = sum(calls.values()) / elapsed
        print(f"{role}: {rate:.1f} commands/s {calls}")
        assert rate < 40, f"idle {role} made {rate:.1f} Redis commands/s: {calls}"
