"""Worker pools without I/O: the queue key of a definition, the Task's queue, the warnings a
registration gets from what live workers announced, the listing, and the run view's reason."""

from __future__ import annotations

import pytest
from definitions import node, workflow

from domain.errors import InvalidDefinition, Problem
from domain.events import RunStarted
from domain.messages import DEFAULT_QUEUE
from domain.outbox import task_of
from domain.ports import WorkerAnnouncement
from domain.run import Run
from domain.validation import build_plan
from services.application.pools import (
    MAX_WARNINGS,
    ServedHandler,
    live_queues,
    registration_warnings,
    served_handlers,
)
from services.application.run_view import run_view

BUILTINS = frozenset({"input", "output"})


def worker(worker_id: str, queues: set[str], handlers: set[str]) -> WorkerAnnouncement:
    return WorkerAnnouncement(worker_id, frozenset(queues), frozenset(handlers))


def test_a_node_is_on_the_default_queue_unless_it_names_one() -> None:
    plan = build_plan(workflow(node("a"), node("b", ["a"], queue="gpu-pool_2")))
    assert [spec.queue for spec in plan.nodes] == [DEFAULT_QUEUE, "gpu-pool_2"]


@pytest.mark.parametrize("queue", ["", "a b", "a:b", "{s1}", "x" * 129, 7])
def test_a_queue_is_named_like_a_node_id(queue: object) -> None:
    with pytest.raises(InvalidDefinition) as refused:
        build_plan(workflow(node("a", queue=queue)))
    [problem] = refused.value.problems
    assert problem.path == "$.dag.nodes[0].queue"


def test_a_dispatched_task_carries_its_node_s_queue() -> None:
    plan = build_plan(workflow(node("a", queue="gpu")))
    run = Run.create("r1", "d1", plan, {}, 1.0)
    outcome = run.apply(RunStarted("r1", 1.0))
    assert outcome is not None
    [dispatch] = outcome.commands
    task = task_of(run, dispatch)  # type: ignore[arg-type]
    assert (task.node_id, task.queue, task.handler) == ("a", "gpu", "noop")


def test_what_live_workers_serve_is_counted_per_queue_and_handler() -> None:
    live = [
        worker("w1", {DEFAULT_QUEUE}, {"input", "fetch"}),
        worker("w2", {DEFAULT_QUEUE, "gpu"}, {"input", "train"}),
    ]
    assert served_handlers(live) == [
        ServedHandler(DEFAULT_QUEUE, "fetch", 1),
        ServedHandler(DEFAULT_QUEUE, "input", 2),
        ServedHandler(DEFAULT_QUEUE, "train", 1),
        ServedHandler("gpu", "input", 1),
        ServedHandler("gpu", "train", 1),
    ]
    assert live_queues(live) == {DEFAULT_QUEUE, "gpu"}


def test_a_definition_served_by_live_workers_has_no_warning() -> None:
    plan = build_plan(workflow(node("i", handler="input"), node("t", ["i"], handler="train", queue="gpu")))
    live = [worker("w1", {"gpu"}, {"train"}), worker("w2", {DEFAULT_QUEUE}, set())]
    assert registration_warnings(plan, live, BUILTINS) == []


def test_a_queue_without_a_worker_is_one_warning_at_its_first_node() -> None:
    plan = build_plan(workflow(node("a", queue="gpu"), node("b", queue="gpu"), node("c", handler="input")))
    gpu, default = registration_warnings(plan, [], BUILTINS)  # no worker at all
    assert gpu == Problem(
        "$.dag.nodes[0].queue",
        "no live worker serves queue 'gpu' (node 'a'): its tasks wait until a worker of that queue starts",
    )
    assert default.path == "$.dag.nodes[2].queue" and "queue 'default'" in default.message


def test_a_handler_no_worker_of_its_queue_announced_is_a_warning_naming_what_they_serve() -> None:
    plan = build_plan(
        workflow(node("a", handler="train"), node("b", handler="train"), node("c", handler="input"))
    )
    live = [worker("w1", {DEFAULT_QUEUE}, {"fetch"}), worker("w2", {"gpu"}, {"train"})]
    [warning] = registration_warnings(plan, live, BUILTINS)
    assert warning.path == "$.dag.nodes[0].handler"
    assert warning.message.startswith(
        "no live worker of queue 'default' has announced handler 'train' (node 'a'; they serve: fetch)"
    )


def test_warnings_are_bounded() -> None:
    plan = build_plan(workflow(*(node(f"n{i}", queue=f"q{i}") for i in range(MAX_WARNINGS + 50))))
    assert len(registration_warnings(plan, [], BUILTINS)) == MAX_WARNINGS


def test_the_run_view_names_the_queue_a_queued_node_waits_for_when_no_worker_serves_it() -> None:
    plan = build_plan(workflow(node("cpu"), node("gpu", queue="gpu")))
    run = Run.create("r1", "d1", plan, {}, 1.0)
    run.apply(RunStarted("r1", 1.0))

    unknown = run_view(run).nodes
    served = run_view(run, {DEFAULT_QUEUE, "gpu"}).nodes
    missing = run_view(run, {DEFAULT_QUEUE}).nodes

    assert unknown["gpu"].reason == served["gpu"].reason
    assert served["gpu"].reason is not None and served["gpu"].reason.endswith("waiting for a worker")
    assert missing["gpu"].reason is not None
    assert missing["gpu"].reason.endswith("waiting for a worker on queue gpu")
    assert missing["cpu"].reason == served["cpu"].reason
