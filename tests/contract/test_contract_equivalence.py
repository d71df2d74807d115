"""The memory backend and a real Redis, driven side by side by a fuzzed run simulator.

Hypothesis draws a random DAG (retry policies with jitter and retry_on, timeouts, trigger rules,
conditions, optional nodes, fail-fast, a run timeout and an output mapping), then, step by step, a
batch of events chosen from what the run is doing: starts, successes (small outputs, and large ones
the Redis bus stages apart), failures (retryable or not), attempt deadlines, due retries, cancels,
dead letters, plus duplicates, reordered batches and stale attempts. Every batch is applied by both
stores (on Redis, by one of two "orchestrator processes" with their own caches, so commits also
meet stale state and are decided again), and after every batch the stores must agree: the run's
state, its history, the tasks queued and the timers set.

``FUZZ_EXAMPLES`` sets how many runs are simulated (CI: the default); ``FUZZ_EXAMPLES=2000 uv run
pytest tests/contract/test_contract_equivalence.py`` runs it long.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any

import pytest
from contract_support import (
    T0,
    Backend,
    BackendFactory,
    comparable,
    drain,
    mirror_snapshot,
    new_id,
    node,
    workflow,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.events import (
    AttemptTimedOut,
    CancelRequested,
    Event,
    EventDeadLettered,
    HeartbeatReceived,
    NodeFailed,
    NodeStarted,
    NodeSucceeded,
    RetryDue,
    RunStarted,
    RunTimedOut,
)
from domain.messages import Task
from domain.ports import MessageQueue, StoredDefinition
from domain.run import DEADLINE_GRACE_SECONDS, Run
from domain.statuses import NodeStatus
from domain.validation import build_plan

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
MAX_BATCHES = 40

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
LARGE = st.builds(lambda n: {"blob": "x" * n}, st.integers(1100, 3000))
"""Larger than the 1 KiB that travels inside an event: the Redis bus stages it in the run's state."""
KEYED = st.builds(lambda k, n: {"k": k, "pad": "x" * n}, JSON, st.sampled_from([0, 2000]))
"""An output with the key the drawn conditions read, small or staged."""


RULES = [
    "all_success",
    "all_done",
    "all_failed",
    "one_success",
    "one_failed",
    "none_failed",
    "none_failed_min_one_success",
    "always",
]


def _condition(draw: st.DrawFn, parents: list[int]) -> str:
    """A condition over a parent's output (any JSON: a missing key cannot be evaluated, which fails
    the node) or the run's input."""
    source = f"n{draw(st.sampled_from(parents))}" if parents else "workflow.input"
    form = draw(st.sampled_from(["{{ %s }}", "{{ %s.k }} == 1", "not {{ %s.k }}"]))
    return form % source


@st.composite
def definitions(draw: st.DrawFn) -> dict[str, Any]:
    size = draw(st.integers(1, 8))
    nodes = []
    for i in range(size):
        parents = sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else []
        extra: dict[str, Any] = {}
        if draw(st.booleans()):
            attempts = draw(st.integers(1, 3))
            extra["retry_policy"] = {
                "max_attempts": attempts,
                "initial_backoff_seconds": 0.5,
                "jitter": draw(st.booleans()),
                **draw(st.sampled_from([{}, {"retry_on": ["E"]}, {"no_retry_on": ["E"]}])),
            }
        if draw(st.integers(0, 3)) == 0:
            extra["timeout_seconds"] = draw(st.sampled_from([1, 2.5, 10]))
        if draw(st.integers(0, 3)) == 0:
            extra["heartbeat_timeout_seconds"] = draw(st.sampled_from([0.5, 2]))
        if parents and draw(st.integers(0, 2)) == 0:
            extra["trigger_rule"] = draw(st.sampled_from(RULES))
        if draw(st.integers(0, 3)) == 0:
            extra["when"] = _condition(draw, parents)
        if draw(st.integers(0, 5)) == 0:
            extra["optional"] = True
        nodes.append(node(f"n{i}", [f"n{p}" for p in parents], **extra))
    raw = workflow(*nodes, name="fuzz")
    if draw(st.integers(0, 3)) == 0:
        raw["on_failure"] = "fail_fast"
    if draw(st.integers(0, 4)) == 0:
        raw["timeout_seconds"] = draw(st.sampled_from([3, 20]))
    if draw(st.integers(0, 2)) == 0:
        raw["output"] = {"last": f"{{{{ n{size - 1} }}}}", "key": "{{ n0.k }}"}
    return raw


@dataclass
class Sides:
    memory: Backend
    redis: list[Backend]
    """Two sets of ports on one Redis: two processes, each with its own cache of runs."""
    run_id: str
    applied: list[Event] = field(default_factory=list)
    clock: float = T0

    def tick(self, data: st.DataObject) -> float:
        self.clock += data.draw(st.sampled_from([0.001, 0.3, 1.0, 7.0]), label="time passes")
        return self.clock


async def _started(
    factory_memory: BackendFactory, factory_redis: BackendFactory, raw: dict[str, Any]
) -> Sides:
    memory = await factory_memory.build(factory_memory.settings())
    first = await factory_redis.build(factory_redis.settings())
    sides = Sides(memory, [first, await first.connect()], new_id("run"))
    for backend in (memory, first):
        stored = StoredDefinition("def-fuzz", build_plan(raw), T0)
        await backend.definitions.add(stored)
        await backend.runs.add(Run.create(sides.run_id, stored.definition_id, stored.plan, {"k": 1}, T0))
    for backend in (memory, first):
        received = await drain(backend.events, 1, consumer="fuzz")
        assert [d.message for d in received] == [RunStarted(sides.run_id, T0, "def-fuzz")]
        await backend.runs.apply([d.message for d in received])
        await backend.events.ack(received)
    return sides


def _candidates(run: Run, sides: Sides, data: st.DataObject) -> list[Event]:
    """Events the engine could see next, given what the run is doing."""
    at = sides.tick(data)
    run_id = sides.run_id
    found: list[Event] = []
    for spec, state in run.node_states():
        if state.status in (NodeStatus.QUEUED, NodeStatus.RUNNING):
            attempt = state.attempt
            worker = data.draw(st.sampled_from(["w1", "w2"]), label="worker")
            output = data.draw(JSON | LARGE | KEYED, label="output")
            found += [
                NodeStarted(run_id, spec.id, attempt, worker, at),
                NodeSucceeded(run_id, spec.id, attempt, output, at, worker, state.started_at),
                NodeFailed(run_id, spec.id, attempt, "E", "boom", at, data.draw(st.booleans()), worker),
            ]
            if spec.timeout_seconds is not None:
                started = state.started_at or at
                found.append(
                    AttemptTimedOut(
                        run_id, spec.id, attempt, started + spec.timeout_seconds + DEADLINE_GRACE_SECONDS
                    )
                )
            beat = data.draw(st.none() | JSON, label="heartbeat details")
            found.append(HeartbeatReceived(run_id, spec.id, attempt, at, worker, state.started_at, beat))
            if spec.heartbeat_timeout_seconds is not None:
                last = max(m for m in (state.started_at, state.heartbeat_at, at) if m is not None)
                found.append(AttemptTimedOut(run_id, spec.id, attempt, last + spec.heartbeat_timeout_seconds))
            found.append(NodeSucceeded(run_id, spec.id, attempt - 1, "stale", at))  # an older attempt
        if state.retry_at is not None:
            found += [
                RetryDue(run_id, spec.id, state.attempt + 1, state.retry_at),
                EventDeadLettered(run_id, spec.id, state.attempt + 1, "retry dead-lettered", at),
            ]
    if data.draw(st.integers(0, 12), label="rare") == 0:
        found.append(CancelRequested(run_id, at))
    if run.plan.timeout_seconds is not None and run.started_at is not None:
        found.append(RunTimedOut(run_id, run.started_at + run.plan.timeout_seconds))
    if data.draw(st.integers(0, 12), label="rare") == 0:
        found.append(EventDeadLettered(run_id, None, 0, "start dead-lettered", at))
    if sides.applied:
        found.append(data.draw(st.sampled_from(sides.applied), label="duplicate"))
    return found


async def _apply(sides: Sides, batch: list[Event], data: st.DataObject) -> None:
    await sides.memory.runs.apply(batch)
    # Through the Redis bus (it stages large outputs); applied by one of the two processes.
    bus = sides.redis[0].events
    await bus.send(batch)
    received = await drain(bus, len(batch), consumer="fuzz")
    orchestrator = sides.redis[data.draw(st.integers(0, 1), label="orchestrator")]
    await orchestrator.runs.apply([d.message for d in received], received)
    sides.applied += batch


async def _tasks(queue: MessageQueue[Task]) -> list[Task]:
    deliveries = await queue.receive("fuzz-worker", 10_000, 0.001)
    await queue.ack(deliveries)
    return sorted((d.message for d in deliveries), key=lambda t: (t.node_id, t.attempt))


async def _assert_agree(sides: Sides, step: int) -> None:
    redis = sides.redis[0]
    stored, reference = await redis.runs.get(sides.run_id), await sides.memory.runs.get(sides.run_id)
    assert mirror_snapshot(stored) == mirror_snapshot(reference), f"state diverges after batch {step}"
    stored_history, reference_history = [
        [comparable(entry) for _, entry in await b.runs.history(sides.run_id, 0, 10_000)]
        for b in (redis, sides.memory)
    ]
    assert stored_history == reference_history, f"history diverges after batch {step}"
    assert await _tasks(redis.tasks) == await _tasks(sides.memory.tasks), f"tasks diverge after batch {step}"
    due = [await b.timers.next_due_at() for b in (redis, sides.memory)]
    assert due[0] == due[1] or (None not in due and abs(due[0] - due[1]) < 1e-6), f"timers diverge: {due}"


async def _simulate(redis_url: str, raw: dict[str, Any], data: st.DataObject) -> None:
    factories = (BackendFactory("memory", None), BackendFactory("redis", redis_url))
    try:
        sides = await _started(*factories, raw)
        await _assert_agree(sides, 0)
        for step in range(1, MAX_BATCHES + 1):
            reference = await sides.memory.runs.get(sides.run_id)
            candidates = _candidates(reference, sides, data)
            if not candidates or (reference.status.is_final and not data.draw(st.booleans(), label="go on")):
                break
            size = data.draw(st.integers(1, 3), label="batch size")
            batch = [data.draw(st.sampled_from(candidates), label="event") for _ in range(size)]
            await _apply(sides, batch, data)
            await _assert_agree(sides, step)
    finally:
        for factory in factories:
            await factory.close()


@pytest.mark.timeout(max(120, 3 * EXAMPLES))
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=definitions(), data=st.data())
def test_memory_and_redis_agree_after_every_batch(redis_server: Any, raw: dict[str, Any], data: Any) -> None:
    asyncio.run(_simulate(redis_server.url, raw, data))
