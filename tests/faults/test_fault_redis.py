"""Redis killed (SIGKILL) and restarted with its data in the middle of a run, and Redis paused
(SIGSTOP) for longer than the clients' socket timeouts in the middle of a fan-in.

``appendfsync always``: what Redis acknowledged survives the kill. No engine process may exit;
each rides the outage out and carries on by itself; the runs complete with every node dispatched
and completed once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from distributed_support import EngineProcess, node, results, status, workflow
from fault_support import FaultCluster, fault_node, measure
from invariants import check_invariants

from services.container import Container

RETRYING = "retrying until the backend answers"
RECOVERED = "works again"
# How long a client waits for an answer before it gives up on a connection (a paused Redis
# accepts connections and commands but answers nothing).
SOCKET_TIMEOUT_SECONDS = float(Container.redis_client.kwargs["read_timeout_seconds"])

STEPS = [f"step_{number}" for number in range(1, 7)]


def noticed_outage(process: EngineProcess) -> bool:
    log = process.log()
    return RETRYING in log and RECOVERED in log


async def wait_recovered(engine: FaultCluster, processes: list[EngineProcess]) -> None:
    """Each process logs the outage and, once a loop of its own has worked again, its end; a loop
    that was idle (blocked on a read) may say so a moment after the run is over."""
    try:
        await engine.wait_until(lambda: all(map(noticed_outage, processes)), 15, "recovery logged")
    except TimeoutError:
        quiet = [p.describe() for p in processes if not noticed_outage(p)]
        raise AssertionError("\n".join(quiet)) from None


@pytest.mark.timeout(60)
async def test_redis_killed_and_restarted_mid_run(faults: Callable[..., FaultCluster]) -> None:
    # The visibility timeout bounds how long a task delivered in the instant of the kill (recorded
    # by Redis, never received) waits before it is reclaimed.
    engine = faults(appendfsync="always", VISIBILITY_TIMEOUT_SECONDS="3")
    server = engine.redis_server
    port, folder = server.port, server.folder
    nodes = [node("input", "input")]
    nodes += [
        fault_node(step, [previous], sleep=0.4)
        for previous, step in zip(["input", *STEPS], STEPS, strict=False)
    ]
    nodes.append(node("output", "output", [STEPS[-1]]))
    definition = workflow("chain_through_an_outage", nodes)
    api, orchestrator, worker = await engine.start_many(("api",), ("orchestrator",), ("worker",))

    async with engine.client() as client:
        run_id = await engine.start_run(client, definition, {"seed": "s-1"})

        def first_steps_done() -> dict[str, Any] | None:
            states = engine.node_states(run_id)
            return states if states["step_2"].status == "COMPLETED" else None

        before = await engine.wait_until(first_steps_done, 20, "step_2 completed")
        assert before["output"].status == "PENDING", before
        server.kill()
        await engine.stay_alive(2.0)  # they ride the outage out, they do not exit
        server.restart()
        restarted_at = time.time()
        assert (server.port, server.folder) == (port, folder)  # same port, same data
        after = engine.node_states(run_id)
        # nothing acknowledged lost
        assert after["step_1"].status == after["step_2"].status == "COMPLETED", after

        resumed = await engine.ledger_entry(
            lambda e: e.at > restarted_at and e.event == "start", 30, "resumed"
        )
        measure("Redis SIGKILL + restart (AOF always): restart -> next task", resumed.at - restarted_at)
        await engine.wait_final([run_id], within=30)
        await engine.wait_drained()
        view = await status(client, run_id)
        outputs = (await results(client, run_id))["results"]

    assert view["state"] == "COMPLETED", view
    assert {n["attempts"] for n in view["nodes"].values()} == {1}, view  # redelivered, never retried
    assert [output["node"] for output in outputs["output"].values()] == [STEPS[-1]]
    for process in (api, orchestrator, worker):
        assert process.running(), process.describe()
    await wait_recovered(engine, [orchestrator, worker])
    check_invariants(engine, [run_id], expected={run_id: "COMPLETED"})


PARENTS = [f"parent_{number:02d}" for number in range(20)]


@pytest.mark.timeout(60)
async def test_redis_paused_past_client_timeouts_no_duplicate_dispatch(
    faults: Callable[..., FaultCluster],
) -> None:
    """While Redis is stopped, commands sent to it wait in its socket buffers; clients give up on
    them (socket timeout) and retry on new connections. On resume Redis executes the abandoned
    commands too: results and transitions arrive twice, and entries held across the pause look
    abandoned (idle past the visibility timeout) and are reclaimed. None of it may dispatch twice."""
    engine = faults(appendfsync="always", VISIBILITY_TIMEOUT_SECONDS="2")
    server = engine.redis_server
    # Parents finish one after another (0.2 s to 2.1 s), so the pause falls among them.
    definition = workflow(
        "fan_in_through_a_pause",
        [
            fault_node("root"),
            *(
                fault_node(parent, ["root"], sleep=round(0.2 + 0.1 * n, 2))
                for n, parent in enumerate(PARENTS)
            ),
            fault_node("child", PARENTS),
        ],
    )
    await engine.start_many(("api",), ("orchestrator",), ("orchestrator",), ("worker",), ("worker",))
    async with engine.client() as client:
        run_id = await engine.start_run(client, definition)

        def some_parents_done() -> dict[str, Any] | None:
            states = engine.node_states(run_id)
            return states if sum(states[p].status == "COMPLETED" for p in PARENTS) >= 3 else None

        at_pause = await engine.wait_until(some_parents_done, 20, "3 parents completed")
        server.pause()
        try:
            await engine.stay_alive(SOCKET_TIMEOUT_SECONDS + 1.5)
        finally:
            server.resume()
        resumed_at = time.time()
        assert sum(at_pause[p].status == "COMPLETED" for p in PARENTS) < len(PARENTS), at_pause
        assert at_pause["child"].status == "PENDING", at_pause

        child = await engine.ledger_entry(lambda e: e.node == "child" and e.event == "start", 30, "child ran")
        measure("Redis SIGSTOP past client timeouts: resume -> fan-in child running", child.at - resumed_at)
        await engine.wait_final([run_id], within=30)
        await engine.wait_drained()
        outputs = (await results(client, run_id))["results"]

    assert outputs["child"]["x"] == 1
    dispatched = engine.dispatches()
    assert dispatched[(run_id, "child", 1)] == 1, dispatched
    assert sum(dispatched.values()) == len(PARENTS) + 2, dispatched
    for process in engine.processes:
        assert process.running(), process.describe()
    await wait_recovered(engine, [p for p in engine.processes if p.args[0] != "api"])
    check_invariants(engine, [run_id], expected={run_id: "COMPLETED"})
