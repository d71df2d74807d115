"""Maps (``for_each``) in the run aggregate: items dispatched, capped, retried, tolerated, ended."""

from __future__ import annotations

from typing import Any

from domain_builders import RUN_ID, handle, new_run, node, plan_of, problems_of, workflow

from domain.events import (
    AttemptTimedOut,
    CancelAttempts,
    CancelRequested,
    DispatchNode,
    FinishRun,
    NodeFailed,
    NodeStarted,
    NodeSucceeded,
    RedriveRequested,
    RetryDue,
    RunStarted,
    ScheduleDeadline,
    ScheduleRetry,
)
from domain.map_spec import ATTEMPTS_PER_LIFE, ITEMS_FAILED, NOT_A_LIST, MapOutput
from domain.plan import WorkflowPlan
from domain.reasons import CONDITION_FALSE
from domain.run import Run
from domain.statuses import NodeStatus, RunStatus
from domain.validation import build_plan


def map_plan(**map_keys: Any) -> WorkflowPlan:
    """src -> each (a map over src.xs) -> after"""
    return plan_of(
        node("src"),
        node("each", ["src"], {"x": "{{ item }}", "i": "{{ index }}"}, for_each="{{ src.xs }}", **map_keys),
        node("after", ["each"]),
    )


def started_with(plan: WorkflowPlan, xs: Any) -> tuple[Run, list[Any]]:
    run = new_run(plan)
    handle(run, RunStarted(RUN_ID, 1.0))
    return run, handle(run, NodeSucceeded(RUN_ID, "src", 1, {"xs": xs}, 2.0))


def dispatched(commands: list[Any]) -> list[str]:
    return [c.node_id for c in commands if isinstance(c, DispatchNode)]


def ok(run: Run, key: str, attempt: int = 1, output: Any = None, at: float = 3.0) -> list[Any]:
    return handle(run, NodeSucceeded(RUN_ID, key, attempt, output, at))


def fail(run: Run, key: str, attempt: int = 1, retryable: bool = False, at: float = 3.0) -> list[Any]:
    return handle(run, NodeFailed(RUN_ID, key, attempt, "ValueError", f"{key} broke", at, retryable))


def test_a_map_dispatches_one_task_per_item_and_completes_with_their_count() -> None:
    run, commands = started_with(map_plan(), ["a", "b", "c"])
    assert dispatched(commands) == ["each#0", "each#1", "each#2"]
    each = run.node("each")
    assert each.status is NodeStatus.RUNNING and each.items is not None and each.items.total == 3
    for item in (2, 0):
        assert ok(run, f"each#{item}", output=item) == []
    outcome = run.apply(NodeSucceeded(RUN_ID, "each#1", 1, "one", 4.0))
    assert outcome is not None
    assert outcome.recorded_item == ("each#1", "one")
    assert outcome.recorded_outputs == ["each"]
    assert run.outputs["each"] == MapOutput(3)
    assert dispatched(outcome.commands) == ["after"]
    assert run.node("each").status is NodeStatus.COMPLETED


def test_an_empty_list_completes_the_map_at_once() -> None:
    run, commands = started_with(map_plan(), [])
    assert dispatched(commands) == ["after"]
    assert run.node("each").status is NodeStatus.COMPLETED
    assert run.outputs["each"] == MapOutput(0)


def test_a_value_that_is_not_a_list_fails_the_map_naming_its_type() -> None:
    run, commands = started_with(map_plan(), {"not": "a list"})
    each = run.node("each")
    assert each.status is NodeStatus.FAILED
    assert each.error is not None and each.error.type == NOT_A_LIST
    assert "must be a list, got object" in each.error.message
    assert run.node("after").status is NodeStatus.SKIPPED
    assert any(isinstance(c, FinishRun) and c.status is RunStatus.FAILED for c in commands)


def test_max_concurrency_caps_items_in_flight_and_each_end_lets_the_next_go() -> None:
    run, commands = started_with(map_plan(max_concurrency=2), list(range(5)))
    assert dispatched(commands) == ["each#0", "each#1"]
    assert dispatched(ok(run, "each#1")) == ["each#2"]
    assert dispatched(ok(run, "each#0")) == ["each#3"]
    items = run.node("each").items
    assert items is not None and len(items.live) == 2


def test_an_item_is_retried_by_the_node_policy_and_holds_its_place_meanwhile() -> None:
    run, _ = started_with(map_plan(max_concurrency=1, retry_policy={"max_attempts": 2}), [1, 2])
    retries = [c for c in fail(run, "each#0", retryable=True) if isinstance(c, ScheduleRetry)]
    assert [(c.node_id, c.attempt) for c in retries] == [("each#0", 2)]
    items = run.node("each").items
    assert items is not None and items.live[0].status is NodeStatus.PENDING
    assert items.next_item == 1  # item 1 waits: the retrying item holds the only place
    commands = handle(run, RetryDue(RUN_ID, "each#0", 2, 10.0))
    assert dispatched(commands) == ["each#0"]
    assert dispatched(ok(run, "each#0", attempt=2)) == ["each#1"]


def test_failures_within_tolerance_complete_the_map_with_the_errors_in_place() -> None:
    run, _ = started_with(map_plan(tolerated_failures=1), ["a", "b"])
    outcome = run.apply(NodeFailed(RUN_ID, "each#0", 1, "ValueError", "bad a", 3.0, False))
    assert outcome is not None
    assert outcome.recorded_item == ("each#0", {"error": {"type": "ValueError", "message": "bad a"}})
    ok(run, "each#1")
    assert run.node("each").status is NodeStatus.COMPLETED


def test_one_failure_beyond_tolerance_fails_the_map_at_once_and_cancels_its_items() -> None:
    run, _ = started_with(map_plan(tolerated_failures="25%"), ["a", "b", "c", "d"])
    fail(run, "each#0")  # 1 of 4: tolerated
    assert run.node("each").status is NodeStatus.RUNNING
    commands = fail(run, "each#1")
    each = run.node("each")
    assert each.status is NodeStatus.FAILED
    assert each.error is not None and each.error.type == ITEMS_FAILED
    assert "2 of 4 items failed, more than the 25% tolerated" in each.error.message
    cancels = [c for c in commands if isinstance(c, CancelAttempts)]
    assert cancels and set(cancels[0].attempts) == {("each#2", 1), ("each#3", 1)}
    assert run.status is RunStatus.FAILED
    assert each.items is not None and not each.items.live and each.items.cancelled == 2


def test_stale_and_repeated_item_events_change_nothing() -> None:
    run, _ = started_with(map_plan(), ["a"])
    assert run.apply(NodeSucceeded(RUN_ID, "each#0", 2, None, 3.0)) is None  # no such attempt
    assert run.apply(NodeSucceeded(RUN_ID, "each#7", 1, None, 3.0)) is None  # no such item
    assert run.apply(NodeStarted(RUN_ID, "each#0", 1, "w1", 3.0)) is not None
    assert run.apply(NodeStarted(RUN_ID, "each#0", 1, "w1", 3.0)) is None
    ok(run, "each#0")
    assert run.apply(NodeSucceeded(RUN_ID, "each#0", 1, None, 4.0)) is None


def test_a_cancel_tells_the_workers_of_the_items_in_flight() -> None:
    run, _ = started_with(map_plan(), ["a", "b"])
    ok(run, "each#0")
    commands = handle(run, CancelRequested(RUN_ID, 5.0))
    cancels = [c for c in commands if isinstance(c, CancelAttempts)]
    assert cancels and cancels[0].attempts == (("each#1", 1),)
    assert run.node("each").status is NodeStatus.CANCELLED


def test_a_map_over_the_run_input_counts_its_items_at_the_start() -> None:
    plan = plan_of(node("each", config={"x": "{{ item }}"}, for_each="{{ workflow.input.xs }}"))
    run = new_run(plan, {"xs": [1, 2]})
    assert dispatched(handle(run, RunStarted(RUN_ID, 1.0))) == ["each#0", "each#1"]


def test_a_redrive_runs_again_only_the_items_that_did_not_complete_with_new_attempt_numbers() -> None:
    run, _ = started_with(map_plan(max_concurrency=2), ["a", "b", "c"])
    ok(run, "each#0")
    fail(run, "each#1")  # beyond tolerance: the map fails, item 2 never dispatched
    assert run.status is RunStatus.FAILED
    commands = handle(run, RedriveRequested(RUN_ID, 9.0))
    again = [(c.node_id, c.attempt) for c in commands if isinstance(c, DispatchNode)]
    assert again == [("each#1", ATTEMPTS_PER_LIFE + 1), ("each#2", ATTEMPTS_PER_LIFE + 1)]
    ok(run, "each#1", attempt=ATTEMPTS_PER_LIFE + 1)
    ok(run, "each#2", attempt=ATTEMPTS_PER_LIFE + 1)
    assert run.status is RunStatus.RUNNING and run.node("after").status is NodeStatus.QUEUED
    items = run.node("each").items
    assert items is not None and (items.succeeded, items.failed, items.failed_items) == (3, 0, set())


def test_a_redrive_from_the_map_runs_all_of_its_items_again() -> None:
    run, _ = started_with(map_plan(), ["a", "b"])
    ok(run, "each#0")
    fail(run, "each#1")
    commands = handle(run, RedriveRequested(RUN_ID, 9.0, ("each",)))
    assert dispatched(commands) == ["each#0", "each#1"]


def test_validation_locates_each_misuse_of_a_map() -> None:
    problems = problems_of(
        workflow(
            node("src"),
            node("plain", ["src"], {"x": "{{ item }}"}, max_concurrency=2),
            node("m", ["src"], {"x": 1}, for_each="{{ src.xs }}", when="{{ item.n }} == {{ far.x }}"),
            node("t", ["src"], for_each="{{ src.xs }}", tolerated_failures="lots"),
            node("far", [], for_each="{{ src.xs }}"),
        )
    )
    paths = {p.path for p in problems}
    assert "$.dag.nodes[1].max_concurrency" in paths
    assert "$.dag.nodes[1].config" in paths  # {{ item }} outside a map
    assert "$.dag.nodes[2].when" in paths  # far is not an ancestor of m (its item is fine)
    assert "$.dag.nodes[3].tolerated_failures" in paths
    assert "$.dag.nodes[4].for_each" in paths  # src is not an ancestor of far


def test_a_condition_or_the_run_output_cannot_read_a_map_node() -> None:
    definition = workflow(
        node("src"),
        node("each", ["src"], for_each="{{ src.xs }}"),
        node("after", ["each"], when="{{ each }} != null"),
    )
    definition["output"] = {"all": "{{ each }}"}
    problems = problems_of(definition)
    assert {p.path for p in problems} == {"$.dag.nodes[2].when", "$.output"}
    assert all("cannot read map node 'each'" in p.message for p in problems)


def test_a_condition_on_the_item_goes_with_the_items_and_a_false_one_skips_its_item() -> None:
    plan = map_plan(when="{{ item }} != 'b'")
    each = plan.node("each")
    assert each.condition is None and each.map is not None and each.map.item_condition is not None
    run, _ = started_with(plan, ["a", "b", "c"])
    ok(run, "each#0")
    outcome = run.apply(NodeFailed(RUN_ID, "each#1", 1, CONDITION_FALSE, "'b' != 'b' is false", 3.0, False))
    assert outcome is not None and outcome.recorded_item == ("each#1", None)
    ok(run, "each#2")
    items = run.node("each").items
    assert items is not None and (items.succeeded, items.skipped, items.failed) == (2, 1, 0)
    assert run.node("each").status is NodeStatus.COMPLETED  # a skipped item is no failure


def test_an_item_without_a_timeout_gets_the_default_deadline_and_is_told_when_it_passes() -> None:
    raw = workflow(
        node("src"), node("each", ["src"], for_each="{{ src.xs }}", retry_policy={"max_attempts": 2})
    )
    plan = build_plan(raw, default_attempt_timeout_seconds=60.0)
    run, _ = started_with(plan, ["a"])
    commands = handle(run, NodeStarted(RUN_ID, "each#0", 1, "w1", 3.0))
    assert [(c.node_id, c.due_at) for c in commands if isinstance(c, ScheduleDeadline)] == [("each#0", 63.0)]
    assert handle(run, AttemptTimedOut(RUN_ID, "each#0", 1, 62.0)) == []  # not yet
    commands = handle(run, AttemptTimedOut(RUN_ID, "each#0", 1, 63.0))
    assert CancelAttempts(RUN_ID, (("each#0", 1),)) in commands
    assert [(c.node_id, c.attempt) for c in commands if isinstance(c, ScheduleRetry)] == [("each#0", 2)]
