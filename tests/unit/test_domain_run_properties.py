"""Property-based tests of validation and the run aggregate over random DAGs.

A simulated engine keeps the set of dispatched-but-unfinished nodes and lets hypothesis pick which one
finishes next, sometimes delivering a duplicate or a stale report first.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from domain_builders import RUN_ID, handle, new_run, node, snapshot, workflow
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.errors import InvalidDefinition
from domain.events import (
    DispatchNode,
    Event,
    FinishRun,
    NodeFailed,
    NodeStarted,
    NodeSucceeded,
    RunStarted,
    ScheduleRetry,
)
from domain.node_state import ErrorInfo
from domain.reasons import UPSTREAM_FAILED
from domain.run import Run
from domain.statuses import NodeStatus, RunStatus
from domain.validation import build_plan

PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False
)


@dataclass(frozen=True)
class Dag:
    """Node ``i`` is named ``n{i}``; its parents are earlier nodes. ``order`` is the definition order."""

    parents: tuple[tuple[int, ...], ...]
    order: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.parents)

    def name(self, i: int) -> str:
        return f"n{i}"

    def parent_names(self, name: str) -> list[str]:
        return [self.name(p) for p in self.parents[int(name[1:])]]

    def definition(self, extra_deps: dict[int, list[int]] | None = None) -> dict[str, Any]:
        extra_deps = extra_deps or {}
        nodes = []
        for i in self.order:
            deps = [self.name(p) for p in (*self.parents[i], *extra_deps.get(i, ()))]
            nodes.append(node(self.name(i), deps, config={"i": i}))
        return workflow(*nodes, name="random")

    def descendants(self, start: int) -> set[int]:
        children: dict[int, list[int]] = {i: [] for i in range(self.size)}
        for child, parents in enumerate(self.parents):
            for parent in parents:
                children[parent].append(child)
        seen: set[int] = set()
        stack = list(children[start])
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(children[current])
        return seen


@st.composite
def dags(draw: st.DrawFn, min_nodes: int = 1, max_nodes: int = 40) -> Dag:
    """Each node's parents are a random subset of the earlier nodes (one bitmask per node, which
    shrinks towards fewer edges); the definition lists the nodes in a shuffled order."""
    size = draw(st.integers(min_value=min_nodes, max_value=max_nodes), label="size")
    parents: list[tuple[int, ...]] = [()]
    for i in range(1, size):
        mask = draw(st.integers(0, 2**i - 1), label=f"parents of n{i}")
        parents.append(tuple(p for p in range(i) if mask >> p & 1))
    order = list(range(size))
    draw(st.randoms(use_true_random=True), label="definition order").shuffle(order)
    return Dag(tuple(parents[:size]), tuple(order))


@dataclass
class Engine:
    """A tiny in-memory engine: applies events, checks invariants after each one."""

    dag: Dag
    run: Run
    rng: random.Random
    clock: float = 0.0
    dispatched: Counter[str] = field(default_factory=Counter)
    in_flight: dict[str, int] = field(default_factory=dict)
    completed: set[str] = field(default_factory=set)
    finishes: list[FinishRun] = field(default_factory=list)

    def tick(self) -> float:
        self.clock += 1.0
        return self.clock

    def apply(self, event: Event) -> list[Any]:
        commands = handle(self.run, event)
        for command in commands:
            if isinstance(command, DispatchNode):
                assert command.run_id == RUN_ID
                assert command.attempt == 1
                assert self.dispatched[command.node_id] == 0, f"{command.node_id} dispatched twice"
                missing = set(self.dag.parent_names(command.node_id)) - self.completed
                assert not missing, f"{command.node_id} dispatched before {missing} completed"
                self.dispatched[command.node_id] += 1
                self.in_flight[command.node_id] = command.attempt
            elif isinstance(command, FinishRun):
                self.finishes.append(command)
            else:
                assert not isinstance(command, ScheduleRetry), "no retry policy, no retry"
                raise AssertionError(f"unexpected command {command!r}")
        self.check_invariants()
        return commands

    def apply_ignored(self, event: Event) -> None:
        before = snapshot(self.run)
        assert self.run.apply(event) is None, event
        assert snapshot(self.run) == before, event

    def check_invariants(self) -> None:
        run = self.run
        for spec, state in run.node_states():
            if state.status is NodeStatus.PENDING:
                # no ready node waits: a pending node has at least one parent that is not completed
                assert any(run.nodes[p].status is not NodeStatus.COMPLETED for p in spec.parents), (
                    f"{spec.id} is ready but still PENDING"
                )
        in_flight_states = sum(s.status in (NodeStatus.QUEUED, NodeStatus.RUNNING) for s in run.nodes)
        if not run.status.is_final:
            assert run.in_flight == len(self.in_flight) == in_flight_states
        assert run.finished_count == sum(s.status.is_final for s in run.nodes)

    def stale_event(self, node_id: str, attempt: int) -> Event:
        """A report the aggregate must ignore: wrong attempt, or about a node already finished."""
        at = self.tick()
        choices: list[Event] = [
            NodeSucceeded(RUN_ID, node_id, attempt + 1, "stale", at),
            NodeSucceeded(RUN_ID, node_id, attempt - 1, "stale", at),
            NodeFailed(RUN_ID, node_id, attempt + 1, "E", "stale", at),
            NodeStarted(RUN_ID, node_id, attempt + 1, "w-stale", at),
            NodeSucceeded(RUN_ID, "not-a-node", 1, "stale", at),
        ]
        if self.completed:
            done = self.rng.choice(sorted(self.completed))
            choices += [
                NodeSucceeded(RUN_ID, done, 1, "duplicate", at),
                NodeFailed(RUN_ID, done, 1, "E", "late", at),
                NodeStarted(RUN_ID, done, 1, "w-late", at),
            ]
        return self.rng.choice(choices)

    def complete(self, node_id: str, fail: bool = False) -> None:
        attempt = self.in_flight[node_id]
        how = self.rng.choice(["plain", "started", "stale", "duplicate"])
        if how == "started":
            self.apply(NodeStarted(RUN_ID, node_id, attempt, "w1", self.tick()))
            assert self.run.node(node_id).status is NodeStatus.RUNNING
            assert self.run.node(node_id).worker_id == "w1"
        elif how == "stale":
            self.apply_ignored(self.stale_event(node_id, attempt))
        del self.in_flight[node_id]
        if fail:
            retryable = self.rng.random() < 0.5
            event: Event = NodeFailed(RUN_ID, node_id, attempt, "Boom", "broken", self.tick(), retryable)
        else:
            event = NodeSucceeded(RUN_ID, node_id, attempt, {"from": node_id}, self.tick())
            self.completed.add(node_id)
        self.apply(event)
        if how == "duplicate":
            self.apply_ignored(event)


def _check_plan_matches(dag: Dag) -> Run:
    plan = build_plan(dag.definition())
    assert len(plan) == dag.size
    for spec in plan.nodes:
        assert sorted(plan.nodes[p].id for p in spec.parents) == sorted(dag.parent_names(spec.id))
        for child in spec.children:
            assert spec.index in plan.nodes[child].parents
    assert sorted(plan.nodes[r].id for r in plan.roots) == sorted(
        dag.name(i) for i in range(dag.size) if not dag.parents[i]
    )
    return new_run(plan)


@PROPERTY_SETTINGS
@given(dag=dags(), rng=st.randoms(use_true_random=True))
def test_random_dag_runs_every_node_once_after_its_parents(dag: Dag, rng: random.Random) -> None:
    engine = Engine(dag, _check_plan_matches(dag), rng)
    engine.apply(RunStarted(RUN_ID, engine.tick()))
    while engine.in_flight:
        engine.complete(engine.rng.choice(sorted(engine.in_flight)))

    run = engine.run
    assert engine.dispatched == Counter({dag.name(i): 1 for i in range(dag.size)})
    assert engine.finishes == [FinishRun(RUN_ID, RunStatus.COMPLETED)]
    assert run.status is RunStatus.COMPLETED
    assert all(state.status is NodeStatus.COMPLETED for state in run.nodes)
    assert run.outputs == {dag.name(i): {"from": dag.name(i)} for i in range(dag.size)}
    assert run.finished_count == dag.size
    assert run.in_flight == 0


@PROPERTY_SETTINGS
@given(dag=dags(), data=st.data(), rng=st.randoms(use_true_random=True))
def test_random_dag_with_one_permanent_failure_skips_exactly_its_descendants(
    dag: Dag, data: st.DataObject, rng: random.Random
) -> None:
    failing = data.draw(st.integers(0, dag.size - 1), label="failing node")
    failing_name = dag.name(failing)
    descendants = {dag.name(i) for i in dag.descendants(failing)}

    engine = Engine(dag, _check_plan_matches(dag), rng)
    engine.apply(RunStarted(RUN_ID, engine.tick()))
    while engine.in_flight:
        node_id = engine.rng.choice(sorted(engine.in_flight))
        engine.complete(node_id, fail=node_id == failing_name)

    run = engine.run
    assert engine.finishes == [FinishRun(RUN_ID, RunStatus.FAILED)]
    assert run.status is RunStatus.FAILED
    assert run.failed_nodes == 1
    assert not descendants & set(engine.dispatched)
    for spec, state in run.node_states():
        if spec.id == failing_name:
            assert state.status is NodeStatus.FAILED
            assert state.error == ErrorInfo("Boom", "broken")
        elif spec.id in descendants:
            assert state.status is NodeStatus.SKIPPED, spec.id
            assert state.error == ErrorInfo(
                UPSTREAM_FAILED, f"skipped because upstream node '{failing_name}' failed"
            )
            assert state.attempt == 0
        else:
            assert state.status is NodeStatus.COMPLETED, spec.id
            assert engine.dispatched[spec.id] == 1
    assert run.finished_count == dag.size
    assert run.in_flight == 0


@PROPERTY_SETTINGS
@given(dag=dags(min_nodes=2, max_nodes=30), data=st.data())
def test_random_back_edge_is_reported_as_a_real_cycle(dag: Dag, data: st.DataObject) -> None:
    # pick a node with at least one ancestor and make one of its ancestors depend on it
    candidates = [i for i in range(dag.size) if dag.parents[i]]
    if not candidates:
        # no edge at all: every DAG must simply compile
        build_plan(dag.definition())
        return
    low = data.draw(st.sampled_from(candidates), label="closes the cycle")
    ancestors = {i for i in range(dag.size) if low in dag.descendants(i)}
    high = data.draw(st.sampled_from(sorted(ancestors)), label="depends on it")
    raw = dag.definition(extra_deps={high: [low]})
    try:
        build_plan(raw)
    except InvalidDefinition as error:
        problems = error.problems
    else:
        raise AssertionError("a cycle was accepted")

    deps = {n["id"]: set(n["dependencies"]) for n in raw["dag"]["nodes"]}
    position = {n["id"]: k for k, n in enumerate(raw["dag"]["nodes"])}
    assert problems
    for problem in problems:
        assert problem.message.startswith("dependency cycle: ")
        names = problem.message.removeprefix("dependency cycle: ").split(" (")[0].split(" -> ")
        assert names[0] == names[-1]
        assert len(set(names)) == len(names) - 1
        for before, after in itertools.pairwise(names):
            assert before in deps[after]
        # every cycle in this graph goes through the added edge: high depends on low
        pairs = set(itertools.pairwise(names))
        assert (dag.name(low), dag.name(high)) in pairs
        assert problem.path == f"$.dag.nodes[{position[names[-1]]}].dependencies"
