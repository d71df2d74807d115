"""Where and how many handlers run, what they receive, and many runs at once, in process."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from engine_support import fresh_registry, make_container, node, run_workflow, view, workflow

from services.engine import EmbeddedEngine
from services.worker.registry import HandlerContext


@dataclass
class Span:
    node_id: str
    started: float
    finished: float
    thread: int


async def test_sync_handlers_run_concurrently_in_threads_and_async_ones_on_the_loop() -> None:
    spans: list[Span] = []
    loops: list[tuple[int, asyncio.AbstractEventLoop]] = []
    registry = fresh_registry()

    @registry.register("blocking")
    def blocking(ctx: HandlerContext) -> dict[str, Any]:
        started = time.monotonic()
        time.sleep(0.3)
        spans.append(Span(ctx.node_id, started, time.monotonic(), threading.get_ident()))
        return {"slept": 0.3}

    @registry.register("on_loop")
    async def on_loop(ctx: HandlerContext) -> dict[str, Any]:
        loops.append((threading.get_ident(), asyncio.get_running_loop()))
        return {"inputs": sorted(ctx.inputs)}

    container = make_container(registry)
    definition = workflow(
        node("sync_a", "blocking"),
        node("sync_b", "blocking"),
        node("join", "on_loop", ["sync_a", "sync_b"]),
    )

    run = view(await run_workflow(container, definition))

    assert run["status"] == "COMPLETED"
    a, b = sorted(spans, key=lambda span: span.node_id)
    assert (a.node_id, b.node_id) == ("sync_a", "sync_b")
    assert a.started < b.finished and b.started < a.finished  # they overlapped
    main_thread = threading.get_ident()
    assert a.thread != main_thread and b.thread != main_thread
    assert a.thread != b.thread
    assert loops == [(main_thread, asyncio.get_running_loop())]
    assert run["nodes"]["join"]["output"] == {"inputs": ["sync_a", "sync_b"]}


@dataclass
class InFlight:
    now: int = 0
    peak: int = 0
    seen: list[str] = field(default_factory=list)


async def test_worker_concurrency_limit_is_respected() -> None:
    in_flight = InFlight()
    registry = fresh_registry()

    @registry.register("tracked")
    async def tracked(ctx: HandlerContext) -> dict[str, Any]:
        in_flight.now += 1
        in_flight.peak = max(in_flight.peak, in_flight.now)
        in_flight.seen.append(ctx.node_id)
        try:
            await asyncio.sleep(0.05)
        finally:
            in_flight.now -= 1
        return {}

    container = make_container(registry, worker_concurrency=2)
    definition = workflow(*(node(f"n{i}", "tracked") for i in range(6)))

    run = view(await run_workflow(container, definition, workers=1))

    assert run["status"] == "COMPLETED"
    assert sorted(in_flight.seen) == [f"n{i}" for i in range(6)]
    assert in_flight.peak == 2
    assert in_flight.now == 0
    assert {n["worker_id"] for n in run["nodes"].values()} == {"worker-1"}


async def test_handler_context_has_idempotency_key_and_direct_dependency_outputs() -> None:
    contexts: list[HandlerContext] = []
    registry = fresh_registry()

    @registry.register("record")
    async def record(ctx: HandlerContext) -> dict[str, Any]:
        contexts.append(ctx)
        if ctx.config.get("fail_first") and ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return {"from": ctx.node_id}

    container = make_container(registry)
    definition = workflow(
        node("a", "record"),
        node("b", "record", ["a"]),
        node(
            "c",
            "record",
            ["a", "b"],
            config={"fail_first": True, "a_from": "{{ a.from }}"},
            retry_policy={"max_attempts": 2, "initial_backoff_seconds": 0},
        ),
        node("d", "record", ["c"], config={"origin": "{{ a.from }}", "user": "{{ workflow.input.user }}"}),
    )

    run = await run_workflow(container, definition, {"user": "u-1"})

    assert view(run)["status"] == "COMPLETED"
    seen = [(ctx.node_id, ctx.attempt) for ctx in contexts]
    assert sorted(seen) == [("a", 1), ("b", 1), ("c", 1), ("c", 2), ("d", 1)]
    for ctx in contexts:
        assert ctx.run_id == run.run_id
        assert ctx.idempotency_key == f"{run.run_id}:{ctx.node_id}:{ctx.attempt}"
        assert ctx.run_input == {"user": "u-1"}
    assert len({ctx.idempotency_key for ctx in contexts}) == len(contexts)

    by_node = {ctx.node_id: ctx for ctx in contexts}  # c: its last attempt
    assert dict(by_node["a"].inputs) == {}
    assert dict(by_node["b"].inputs) == {"a": {"from": "a"}}
    assert dict(by_node["c"].inputs) == {"a": {"from": "a"}, "b": {"from": "b"}}
    # Only direct dependencies, even though d's template reads its ancestor a.
    assert dict(by_node["d"].inputs) == {"c": {"from": "c"}}
    assert by_node["c"].config == {"fail_first": True, "a_from": "a"}
    assert by_node["d"].config == {"origin": "a", "user": "u-1"}


async def test_many_concurrent_runs_all_complete_on_first_attempts() -> None:
    runs_count = 50
    registry = fresh_registry()

    @registry.register("step")
    async def step(ctx: HandlerContext) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"n": ctx.run_input["n"], "node": ctx.node_id, "inputs": dict(ctx.inputs)}

    container = make_container(registry)
    diamond = workflow(
        node("top", "step"),
        node("left", "step", ["top"]),
        node("right", "step", ["top"]),
        node("bottom", "step", ["left", "right"]),
        name="diamond",
    )
    workflows = container.workflows()
    stored = await workflows.register(diamond)

    async with EmbeddedEngine(container, workers=3) as engine:
        started = await asyncio.gather(
            *(workflows.start(stored.definition_id, {"n": n}) for n in range(runs_count))
        )
        async with asyncio.timeout(15):
            statuses = await asyncio.gather(*(engine.wait_for(run.run_id) for run in started))

    assert len({run.run_id for run in started}) == runs_count
    assert [status.value for status in statuses] == ["COMPLETED"] * runs_count
    workers_used: set[str] = set()
    for n, started_run in enumerate(started):
        run = view(await workflows.get_run(started_run.run_id))
        assert run["status"] == "COMPLETED"
        for node_id, state in run["nodes"].items():
            assert state["status"] == "COMPLETED", (n, node_id)
            assert state["attempts"] == 1, (n, node_id)
            assert "failed_attempts" not in state
            workers_used.add(state["worker_id"])
        bottom = run["nodes"]["bottom"]["output"]
        # Each run saw only its own input and its own nodes' outputs.
        assert bottom["n"] == n
        assert set(bottom["inputs"]) == {"left", "right"}
        assert all(value["n"] == n for value in bottom["inputs"].values())
    assert workers_used <= {"worker-1", "worker-2", "worker-3"}


async def test_a_handler_mutating_its_inputs_changes_nothing_upstream() -> None:
    registry = fresh_registry()

    @registry.register("source")
    async def source(ctx: HandlerContext) -> dict[str, Any]:
        return {"items": [1, 2], "meta": {"owner": "source"}}

    @registry.register("mutate")
    async def mutate(ctx: HandlerContext) -> dict[str, Any]:
        ctx.inputs["src"]["items"].append(99)
        ctx.inputs["src"]["meta"]["owner"] = "mutator"
        ctx.run_input["user"] = "changed"
        return {"done": True}

    @registry.register("read")
    async def read(ctx: HandlerContext) -> dict[str, Any]:
        return {"seen": ctx.inputs["src"], "user": ctx.run_input["user"]}

    container = make_container(registry)
    definition = workflow(
        node("src", "source"),
        node("mutator", "mutate", ["src"]),
        node("reader", "read", ["src", "mutator"]),  # runs after the mutator, deterministically
    )

    run = view(await run_workflow(container, definition, {"user": "u-1"}))

    assert run["status"] == "COMPLETED"
    original = {"items": [1, 2], "meta": {"owner": "source"}}
    assert run["nodes"]["src"]["output"] == original
    assert run["nodes"]["reader"]["output"] == {"seen": original, "user": "u-1"}
