"""Workers killed, crashing between result and acknowledgement, paused past their lease, running a
task longer than the visibility timeout, and stopped with SIGTERM in the middle of a task."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest
from distributed_support import node, results, status, workflow
from fault_support import FaultCluster, fault_node, measure, worker_id_of
from invariants import check_invariants

from domain.run import DEADLINE_GRACE_SECONDS

VISIBILITY = 2.0
SETTINGS = {"VISIBILITY_TIMEOUT_SECONDS": str(VISIBILITY)}


@pytest.mark.timeout(60)
async def test_worker_killed_mid_task_task_taken_over_after_visibility_timeout(
    faults: Callable[..., FaultCluster],
) -> None:
    engine = faults(**SETTINGS)
    definition = workflow(
        "killed_worker",
        [
            node("input", "input"),
            # The first execution waits for a gate that never opens: its worker dies in there.
            fault_node("slow", ["input"], gate={"1": "never"}),
            node("output", "output", ["slow"]),
        ],
    )
    await engine.start_many(("api",), ("orchestrator",), ("worker",), ("worker",))
    async with engine.client() as client:
        run_id = await engine.start_run(client, definition, {"user_id": "u-1"})
        first = await engine.ledger_entry(
            lambda e: e.node == "slow" and e.event == "start", 20, "slow started"
        )
        doomed = engine.by_pid(first.pid)
        [rescuer] = [worker for worker in engine.live("worker") if worker is not doomed]
        killed_at = engine.kill(doomed)

        again = await engine.ledger_entry(
            lambda e: e.node == "slow" and e.event == "start" and e.execution == 2, 20, "slow ran again"
        )
        measure("worker SIGKILL mid-task (visibility 2 s)", again.at - killed_at)
        await engine.wait_final([run_id], within=20)
        view = await status(client, run_id)
        outputs = (await results(client, run_id))["results"]

    assert view["state"] == "COMPLETED", view
    slow = view["nodes"]["slow"]
    # Redelivered, not dispatched again: still attempt 1, no error.
    assert (slow["status"], slow["attempts"], slow["error"]) == ("COMPLETED", 1, None), slow
    # Taken over only once the lease lapsed (the last heartbeat came at most a third of it before).
    assert again.at - killed_at >= VISIBILITY * 2 / 3 - 0.1
    assert again.pid == rescuer.pid
    # At least once: two executions in the ledger; exactly once: the rescuer's output, recorded once.
    assert [(e.event, e.pid) for e in engine.ledger.of(run_id, "slow")] == [
        ("start", doomed.pid),
        ("start", rescuer.pid),
        ("end", rescuer.pid),
    ]
    assert outputs["slow"]["pid"] == rescuer.pid and outputs["slow"]["x"] == 2
    assert engine.node_states(run_id)["slow"].worker_id == worker_id_of(rescuer)
    assert len(engine.results(run_id, "slow")) == 1
    check_invariants(engine, [run_id], expected={run_id: "COMPLETED"})


@pytest.mark.timeout(60)
async def test_worker_dead_between_result_and_ack_repeats_work_but_not_the_completion(
    faults: Callable[..., FaultCluster],
) -> None:
    engine = faults(**SETTINGS)
    # ``a`` and ``b`` are both parents of ``c``; ``b`` waits until the test opens its gate, so the
    # repeated result of ``a`` arrives while ``c`` still waits: counted twice, it would release ``c``.
    definition = workflow(
        "result_then_crash",
        [fault_node("a"), fault_node("b", gate={"all": "release_b"}), fault_node("c", ["a", "b"])],
    )
    # This worker kills itself right after it reported its first result.
    doomed = engine.start("worker", DAG_FAULT_CRASH_AT="worker.after_result_before_ack")
    await engine.serving(engine.start("api"), engine.start("orchestrator"), doomed)
    async with engine.client() as client:
        run_id = await engine.start_run(client, definition)
        died_at = await engine.wait_dead(doomed, within=20)
        assert "crash point worker.after_result_before_ack" in doomed.log(), doomed.describe()
        # It died after reporting a's success: a is COMPLETED already, its task still pending.
        assert engine.node_states(run_id)["a"].status == "COMPLETED"
        assert [p["consumer"] for p in engine.pending_of("tasks", worker_id_of(doomed))]

        [rescuer] = await engine.start_many(("worker",))
        again = await engine.ledger_entry(
            lambda e: e.node == "a" and e.event == "start" and e.execution == 2, 20, "a ran again"
        )
        measure("worker SIGKILL after result, before ack (visibility 2 s)", again.at - died_at)
        # The repeated success of a is reported and applied (ignored) while c still waits on b.
        await engine.wait_until(lambda: len(engine.results(run_id, "a")) == 2, 20, "a reported twice")
        await engine.wait_until(lambda: engine.drained("events"), 20, "events applied")
        states = engine.node_states(run_id)
        assert (states["c"].status, states["c"].waiting_on, states["c"].attempt) == ("PENDING", 1, 0), states
        assert states["a"].worker_id == worker_id_of(doomed), states["a"]  # the first report stands

        engine.open_gate("release_b")
        await engine.wait_final([run_id], within=20)
        await engine.wait_drained()
        outputs = (await results(client, run_id))["results"]

    assert outputs["a"]["pid"] == doomed.pid and outputs["a"]["x"] == 1
    assert [(e.event, e.pid) for e in engine.ledger.of(run_id, "a")] == [
        ("start", doomed.pid),
        ("end", doomed.pid),
        ("start", rescuer.pid),
        ("end", rescuer.pid),
    ]
    assert engine.dispatches()[(run_id, "c", 1)] == 1
    check_invariants(engine, [run_id], expected={run_id: "COMPLETED"})


@pytest.mark.timeout(60)
async def test_paused_worker_late_result_for_the_old_attempt_is_stale(
    faults: Callable[..., FaultCluster],
) -> None:
    engine = faults(**SETTINGS)
    # Execution 1 (attempt 1) waits for gate g1, which opens only while its worker is paused;
    # execution 2 (attempt 1 again, taken over) fails, so attempt 2 is dispatched; execution 3
    # (attempt 2) waits for gate g3 until the paused worker's late result has been dealt with.
    definition = workflow(
        "paused_worker",
        [
            fault_node("x", retry=2, gate={"1": "g1", "3": "g3"}, fail_on=[2]),
            fault_node("after", ["x"]),
        ],
    )
    await engine.start_many(("api",), ("orchestrator",), ("worker",), ("worker",))
    async with engine.client() as client:
        run_id = await engine.start_run(client, definition)
        first = await engine.ledger_entry(lambda e: e.node == "x" and e.event == "start", 20, "x started")
        paused = engine.by_pid(first.pid)
        engine.pause(paused)
        paused_at = time.time()
        try:
            second = await engine.ledger_entry(
                lambda e: e.node == "x" and e.event == "start" and e.execution == 2, 20, "x taken over"
            )
            measure("worker SIGSTOP past its lease (visibility 2 s)", second.at - paused_at)
            third = await engine.ledger_entry(
                lambda e: e.node == "x" and e.event == "start" and e.execution == 3, 20, "attempt 2 started"
            )
            assert (second.attempt, third.attempt) == (1, 2)
            assert second.pid == third.pid != paused.pid
            rescuer = engine.by_pid(third.pid)

            def attempt_2_running() -> bool:
                state = engine.node_states(run_id)["x"]
                return (state.status, state.attempt, state.worker_id) == ("RUNNING", 2, worker_id_of(rescuer))

            await engine.wait_until(attempt_2_running, 10, "attempt 2 RUNNING")
            engine.open_gate("g1")
        finally:
            engine.resume(paused)

        # The paused worker wakes up, finishes attempt 1 and reports it: stale, ignored.
        await engine.ledger_entry(
            lambda e: e.node == "x" and e.event == "end" and e.execution == 1, 20, "late"
        )
        await engine.wait_until(
            lambda: any(f.get("w") == worker_id_of(paused) for _, f in engine.results(run_id, "x")),
            20,
            "late result reported",
        )
        await engine.wait_until(lambda: engine.drained("events"), 20, "events applied")
        state = engine.node_states(run_id)["x"]
        assert (state.status, state.attempt, state.worker_id) == ("RUNNING", 2, worker_id_of(rescuer)), state
        assert "x" not in engine.stored_run(run_id).outputs

        engine.open_gate("g3")
        await engine.wait_final([run_id], within=20)
        await engine.wait_drained()
        view = await status(client, run_id)
        outputs = (await results(client, run_id))["results"]

    assert view["state"] == "COMPLETED", view
    assert view["nodes"]["x"]["attempts"] == 2
    # Only the new attempt's output is kept, though the old one also ended (the ledger says so).
    assert (outputs["x"]["key"], outputs["x"]["x"]) == (f"{run_id}:x:2", 3), outputs["x"]
    assert outputs["x"]["pid"] == third.pid
    assert engine.node_states(run_id)["x"].worker_id != worker_id_of(paused)
    check_invariants(engine, [run_id], expected={run_id: "COMPLETED"})
    engine.check_all_alive()


@pytest.mark.timeout(60)
async def test_long_task_with_heartbeats_is_never_stolen(faults: Callable[..., FaultCluster]) -> None:
    engine = faults(VISIBILITY_TIMEOUT_SECONDS="1.5")
    task_seconds = 4.5  # three visibility timeouts
    definition = workflow("long", [fault_node("long", sleep=task_seconds), fault_node("after", ["long"])])
    await engine.start_many(("api",), ("orchestrator",), ("worker",), ("worker",), ("worker",))
    async with engine.client() as client:
        run_id = await engine.start_run(client, definition)
        first = await engine.ledger_entry(
            lambda e: e.node == "long" and e.event == "start", 20, "long started"
        )
        runner = engine.by_pid(first.pid)
        # All along, the entry stays with its worker and is never delivered again.
        samples = 0
        while engine.node_states(run_id)["long"].status != "COMPLETED":
            pending = engine.pending_of("tasks", worker_id_of(runner))
            if pending:
                assert [p["times_delivered"] for p in pending] == [1], pending
                samples += 1
            others = [
                p
                for w in engine.live("worker")
                if w is not runner
                for p in engine.pending_of("tasks", worker_id_of(w))
            ]
            assert not [p for p in others if p["times_delivered"] > 1], others
            engine.check_all_alive()
            await engine.stay_alive(0.1)
        await engine.wait_final([run_id], within=20)
        outputs = (await results(client, run_id))["results"]

    assert samples >= 20
    assert [(e.event, e.pid) for e in engine.ledger.of(run_id, "long")] == [
        ("start", runner.pid),
        ("end", runner.pid),
    ]
    assert outputs["long"]["pid"] == runner.pid
    for worker in engine.live("worker"):
        assert "reclaimed" not in worker.log(), worker.describe()
    check_invariants(engine, [run_id], expected={run_id: "COMPLETED"})


@pytest.mark.timeout(60)
async def test_sigterm_during_a_long_task_stops_taking_work_and_finishes_it(
    faults: Callable[..., FaultCluster],
) -> None:
    engine = faults(**SETTINGS)
    # The long task runs until the test opens its gate, well after the stop began.
    long_run = workflow("long", [fault_node("long", gate={"all": "release_long"})])
    later = workflow("later", [fault_node("one"), fault_node("two", ["one"])])
    stopping = engine.start("worker", LOG_LEVEL="INFO")  # INFO: it says when it stops taking tasks
    await engine.serving(engine.start("api"), engine.start("orchestrator"), stopping)
    async with engine.client() as client:
        long_id = await engine.start_run(client, long_run)
        await engine.ledger_entry(lambda e: e.node == "long" and e.event == "start", 20, "long started")
        [other] = await engine.start_many(("worker",))
        stopping.popen.send_signal(signal.SIGTERM)
        engine.doomed.add(stopping.pid)
        await engine.wait_until(lambda: "finishing 1 attempt(s)" in stopping.log(), 10, "worker stopping")
        # Work that arrives now goes to the other worker.
        later_id = await engine.start_run(client, later)
        await engine.wait_final([later_id], within=20)
        # The stopping worker keeps its lease (heartbeats) for longer than the visibility timeout:
        # the other worker, idle, does not take the long task over.
        await engine.stay_alive(1.5 * VISIBILITY)
        assert stopping.running(), stopping.describe()
        assert [p["times_delivered"] for p in engine.pending_of("tasks", worker_id_of(stopping))] == [1]
        engine.open_gate("release_long")
        await engine.wait_final([long_id], within=20)
        assert stopping.popen.wait(10) == 0, stopping.describe()
        long_outputs = (await results(client, long_id))["results"]

    assert long_outputs["long"]["pid"] == stopping.pid  # it finished the task itself ...
    assert [(e.event, e.pid) for e in engine.ledger.of(long_id, "long")] == [
        ("start", stopping.pid),
        ("end", stopping.pid),
    ]  # ... once: nothing was handed over or taken over
    assert {e.pid for e in engine.ledger.entries() if e.run == later_id} == {other.pid}
    check_invariants(engine, [long_id, later_id], expected={long_id: "COMPLETED", later_id: "COMPLETED"})


@pytest.mark.timeout(60)
async def test_hung_worker_attempt_times_out_by_the_orchestrators_deadline(
    faults: Callable[..., FaultCluster],
) -> None:
    """A worker that hangs (SIGSTOP) cannot enforce its node's timeout; the orchestrator's deadline
    for the attempt (its timeout plus a grace after it started) fails it, and the retry runs on
    another worker long before the hung worker's lease (30 s) would have let anyone take it over."""
    engine = faults(VISIBILITY_TIMEOUT_SECONDS="30")
    timeout = 3.0
    hung = fault_node("x", retry=2, gate={"1": "never"})
    hung["timeout_seconds"] = timeout
    definition = workflow("hung_worker", [hung, fault_node("after", ["x"])])
    await engine.start_many(("api",), ("orchestrator",), ("worker",), ("worker",))
    async with engine.client() as client:
        run_id = await engine.start_run(client, definition)
        first = await engine.ledger_entry(lambda e: e.node == "x" and e.event == "start", 20, "x started")
        await engine.wait_until(lambda: engine.node_states(run_id)["x"].status == "RUNNING", 10, "x RUNNING")
        paused = engine.by_pid(first.pid)
        engine.pause(paused)
        try:
            second = await engine.ledger_entry(
                lambda e: e.node == "x" and e.event == "start" and e.attempt == 2, 25, "attempt 2 started"
            )
            measure(
                "worker SIGSTOP holding an attempt with a timeout: start -> retry running",
                second.at - first.at,
            )
            assert second.pid != paused.pid
            assert timeout + DEADLINE_GRACE_SECONDS <= second.at - first.at < 30
            await engine.wait_final([run_id], within=20)
        finally:
            engine.resume(paused)
        view = await status(client, run_id)
        await engine.wait_drained()

    assert view["state"] == "COMPLETED", view
    assert view["nodes"]["x"]["attempts"] == 2
    timed_out = [e for e in engine.history(run_id) if e.kind == "attempt_timed_out"]
    assert [(e.node_id, e.attempt) for e in timed_out] == [("x", 1)], timed_out
    assert timed_out[0].error is not None and timed_out[0].error.type == "TimeoutError"
    assert timed_out[0].retry_at is not None
    check_invariants(engine, [run_id], expected={run_id: "COMPLETED"})
    engine.check_all_alive()
