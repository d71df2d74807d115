"""``RedriveRequested`` applied by the run aggregate (``domain.redrive``): no I/O."""

from __future__ import annotations

from domain_builders import RUN_ID, handle, new_run, node, plan_of, snapshot

from domain.events import (
    CancelRequested,
    DispatchNode,
    FinishRun,
    NodeFailed,
    NodeSucceeded,
    RedriveRequested,
    RunStarted,
)
from domain.history import EntryKind
from domain.redrive import nodes_to_redrive, redrive_refusal
from domain.run import Run
from domain.statuses import NodeStatus, RunStatus


def started(*nodes: dict) -> Run:
    run = new_run(plan_of(*nodes))
    handle(run, RunStarted(RUN_ID, 0.0))
    return run


def test_a_skipped_node_whose_parents_completed_again_becomes_ready() -> None:
    run = started(node("a"), node("b"), node("join", ["a", "b"]))
    handle(run, NodeSucceeded(RUN_ID, "a", 1, 1, 1.0))
    handle(run, NodeFailed(RUN_ID, "b", 1, "Boom", "x", 2.0, retryable=False))
    assert run.node("join").status is NodeStatus.SKIPPED and run.status is RunStatus.FAILED

    outcome = run.apply(RedriveRequested(RUN_ID, 5.0))

    assert outcome is not None
    assert outcome.commands == [DispatchNode(RUN_ID, "b", 2)]
    assert outcome.entry.kind is EntryKind.REDRIVE_REQUESTED and outcome.entry.redriven == ("b", "join")
    assert (run.unfinished, run.in_flight, run.failed_nodes) == (2, 1, 0)
    join = run.node("join")
    assert (join.status, join.waiting_on, join.failed_parents, join.skipped_parents) == (
        NodeStatus.PENDING,
        1,
        0,
        0,
    )
    assert handle(run, NodeSucceeded(RUN_ID, "b", 2, 2, 6.0)) == [DispatchNode(RUN_ID, "join", 1)]
    assert handle(run, NodeSucceeded(RUN_ID, "join", 1, 3, 7.0)) == [
        FinishRun(RUN_ID, RunStatus.COMPLETED, "wf")
    ]


def test_trigger_rules_and_conditions_are_decided_again_when_only_kept_parents_remain() -> None:
    run = started(
        node("a"),
        node("b", ["a"]),
        node("only_on_failure", ["a"], trigger_rule="all_failed"),
        node("guarded", ["a"], when="{{ a.go }} == true"),
    )
    handle(run, NodeSucceeded(RUN_ID, "a", 1, {"go": False}, 1.0))
    handle(run, NodeFailed(RUN_ID, "b", 1, "Boom", "x", 2.0, retryable=False))
    assert run.node("guarded").status is NodeStatus.SKIPPED

    outcome = run.apply(RedriveRequested(RUN_ID, 5.0))

    assert outcome is not None
    assert outcome.entry.redriven == ("b", "only_on_failure", "guarded")
    assert outcome.entry.dispatched == ("b",)
    assert set(outcome.entry.skipped) == {"only_on_failure", "guarded"}
    assert run.node("guarded").error is not None and run.node("guarded").error.type == "ConditionFalse"


def test_a_redrive_of_a_running_or_completed_run_changes_nothing() -> None:
    run = started(node("a"))
    before = snapshot(run)
    assert run.apply(RedriveRequested(RUN_ID, 1.0)) is None
    assert snapshot(run) == before
    handle(run, NodeSucceeded(RUN_ID, "a", 1, 1, 1.0))
    assert run.apply(RedriveRequested(RUN_ID, 2.0)) is None
    assert "has completed" in (redrive_refusal(run, ()) or "")


def test_a_second_redrive_of_the_same_failure_changes_nothing() -> None:
    run = started(node("a"))
    handle(run, CancelRequested(RUN_ID, 1.0))
    assert run.apply(RedriveRequested(RUN_ID, 2.0)) is not None
    before = snapshot(run)
    assert run.apply(RedriveRequested(RUN_ID, 2.0)) is None
    assert snapshot(run) == before


def test_from_chooses_the_node_and_all_its_descendants() -> None:
    run = started(node("a"), node("b", ["a"]), node("c", ["b"]), node("d", ["a"]))
    for at, node_id in enumerate(("a", "b", "d"), start=1):
        handle(run, NodeSucceeded(RUN_ID, node_id, 1, at, float(at)))
    handle(run, NodeFailed(RUN_ID, "c", 1, "Boom", "x", 4.0, retryable=False))

    assert [run.plan.nodes[i].id for i in nodes_to_redrive(run.plan, run.nodes, ())] == ["c"]
    assert [run.plan.nodes[i].id for i in nodes_to_redrive(run.plan, run.nodes, ("b",))] == ["b", "c"]
    outcome = run.apply(RedriveRequested(RUN_ID, 5.0, ("b",)))
    assert outcome is not None and outcome.cleared_outputs == ["b"]
    assert "b" not in run.outputs and run.outputs["a"] == 1
    assert outcome.commands == [DispatchNode(RUN_ID, "b", 2)]
