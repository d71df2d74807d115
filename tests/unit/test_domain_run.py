"""The run aggregate (domain.run.Run) driven by hand with events (domain.events)."""

from __future__ import annotations

from typing import Any

import pytest
from definitions import diamond as diamond_definition
from domain_builders import RUN_ID, handle, new_run, node, plan_of, snapshot

from domain.events import (
    AttemptTimedOut,
    CancelAttempts,
    CancelRequested,
    DispatchNode,
    Event,
    EventDeadLettered,
    FinishRun,
    NodeFailed,
    NodeStarted,
    NodeSucceeded,
    RetryDue,
    RunStarted,
    ScheduleDeadline,
    ScheduleRetry,
)
from domain.node_state import ErrorInfo, FailedAttempt
from domain.plan import WorkflowPlan
from domain.reasons import DEAD_LETTERED, UPSTREAM_FAILED
from domain.retry import RetryPolicy
from domain.run import DEADLINE_GRACE_SECONDS, Run
from domain.statuses import NodeStatus, RunStatus


def dispatch(node_id: str, attempt: int = 1) -> DispatchNode:
    return DispatchNode(RUN_ID, node_id, attempt)


def started(run: Run, at: float = 1.0) -> list[Any]:
    return handle(run, RunStarted(RUN_ID, at))


def succeed(run: Run, node_id: str, attempt: int = 1, output: Any = None, at: float = 2.0) -> list[Any]:
    return handle(run, NodeSucceeded(RUN_ID, node_id, attempt, output, at))


def fail(
    run: Run,
    node_id: str,
    attempt: int = 1,
    at: float = 2.0,
    retryable: bool = True,
    error_type: str = "ValueError",
    message: str = "boom",
) -> list[Any]:
    return handle(run, NodeFailed(RUN_ID, node_id, attempt, error_type, message, at, retryable))


def statuses(run: Run) -> dict[str, NodeStatus]:
    return {spec.id: state.status for spec, state in run.node_states()}


def diamond() -> WorkflowPlan:
    """a -> (b, c) -> d"""
    return plan_of(*diamond_definition()["dag"]["nodes"])


def assert_ignored(run: Run, event: Event) -> None:
    before = snapshot(run)
    assert run.apply(event) is None
    assert snapshot(run) == before


# -- start ------------------------------------------------------------------------------------------


def test_new_run_is_pending_with_every_node_pending() -> None:
    run = new_run(diamond(), {"k": 1})
    assert run.status is RunStatus.PENDING
    assert run.input == {"k": 1}
    assert run.created_at == 0.0
    assert set(statuses(run).values()) == {NodeStatus.PENDING}
    assert [n.waiting_on for n in run.nodes] == [0, 1, 1, 2]
    assert run.finished_count == 0
    assert run.in_flight == 0
    assert run.unfinished == 4


def test_run_started_dispatches_every_root_with_attempt_1() -> None:
    run = new_run(plan_of(node("r1"), node("x", ["r1", "r2"]), node("r2")))
    commands = started(run, at=5.0)
    assert commands == [dispatch("r1"), dispatch("r2")]
    assert run.status is RunStatus.RUNNING
    assert run.started_at == 5.0
    for root in ("r1", "r2"):
        state = run.node(root)
        assert state.status is NodeStatus.QUEUED
        assert state.attempt == 1
        assert state.queued_at == 5.0
    assert run.node("x").status is NodeStatus.PENDING
    assert run.node("x").attempt == 0
    assert run.in_flight == 2


def test_run_started_twice_changes_nothing() -> None:
    run = new_run(diamond())
    started(run)
    assert_ignored(run, RunStarted(RUN_ID, 9.0))


def test_node_events_before_the_run_started_are_ignored() -> None:
    run = new_run(diamond())
    assert_ignored(run, NodeSucceeded(RUN_ID, "a", 1, None, 1.0))
    assert_ignored(run, NodeStarted(RUN_ID, "a", 1, "w", 1.0))
    assert_ignored(run, NodeFailed(RUN_ID, "a", 1, "E", "m", 1.0))


def test_node_started_moves_queued_to_running_and_records_the_worker() -> None:
    run = new_run(diamond())
    started(run)
    assert handle(run, NodeStarted(RUN_ID, "a", 1, "worker-7", 1.5)) == []
    state = run.node("a")
    assert state.status is NodeStatus.RUNNING
    assert state.worker_id == "worker-7"
    assert state.started_at == 1.5
    assert run.in_flight == 1
    # a second delivery of the same start changes nothing
    assert_ignored(run, NodeStarted(RUN_ID, "a", 1, "worker-7", 1.6))
    # a wrong attempt changes nothing
    assert_ignored(run, NodeStarted(RUN_ID, "a", 2, "worker-9", 1.7))


def test_a_task_taken_over_by_another_worker_records_that_worker() -> None:
    run = new_run(diamond())
    started(run)
    handle(run, NodeStarted(RUN_ID, "a", 1, "worker-7", 1.5))
    assert handle(run, NodeStarted(RUN_ID, "a", 1, "worker-8", 9.0)) == []
    state = run.node("a")
    assert (state.status, state.attempt, state.worker_id, state.started_at) == (
        NodeStatus.RUNNING,
        1,
        "worker-8",
        9.0,
    )
    assert run.in_flight == 1


def test_success_may_arrive_without_node_started() -> None:
    run = new_run(plan_of(node("a")))
    started(run)
    assert succeed(run, "a", output=1) == [FinishRun(RUN_ID, RunStatus.COMPLETED)]
    assert run.node("a").status is NodeStatus.COMPLETED


# -- success and readiness --------------------------------------------------------------------------


def test_children_are_dispatched_only_when_every_parent_is_done() -> None:
    run = new_run(diamond())
    started(run)
    assert succeed(run, "a", output={"v": 1}, at=2.0) == [dispatch("b"), dispatch("c")]
    assert run.outputs == {"a": {"v": 1}}
    assert run.node("a").status is NodeStatus.COMPLETED
    assert run.node("a").finished_at == 2.0
    assert run.node("d").waiting_on == 2

    assert succeed(run, "b", at=3.0) == []
    assert run.node("d").status is NodeStatus.PENDING
    assert run.node("d").waiting_on == 1

    assert succeed(run, "c", at=4.0) == [dispatch("d")]
    assert run.node("d").status is NodeStatus.QUEUED
    assert run.node("d").queued_at == 4.0

    assert succeed(run, "d", output="done", at=5.0) == [FinishRun(RUN_ID, RunStatus.COMPLETED)]
    assert run.status is RunStatus.COMPLETED
    assert run.finished_at == 5.0
    assert run.outputs == {"a": {"v": 1}, "b": None, "c": None, "d": "done"}
    assert run.finished_count == 4
    assert run.in_flight == 0


def test_fan_in_child_is_dispatched_once_even_if_a_parent_success_is_delivered_twice() -> None:
    run = new_run(plan_of(node("p1"), node("p2"), node("p3"), node("join", ["p1", "p2", "p3"])))
    started(run)
    dispatched: list[Any] = []
    dispatched += succeed(run, "p1")
    dispatched += succeed(run, "p1")
    dispatched += succeed(run, "p2")
    dispatched += succeed(run, "p2")
    assert dispatched == []
    assert run.node("join").waiting_on == 1
    dispatched += succeed(run, "p3")
    dispatched += succeed(run, "p3")
    dispatched += succeed(run, "p1")
    assert dispatched == [dispatch("join")]
    assert run.node("join").attempt == 1


def test_duplicate_success_keeps_the_first_output() -> None:
    run = new_run(diamond())
    started(run)
    succeed(run, "a", output="first")
    assert_ignored(run, NodeSucceeded(RUN_ID, "a", 1, "second", 9.0))
    assert run.outputs["a"] == "first"


@pytest.mark.parametrize(
    "event",
    [
        NodeSucceeded(RUN_ID, "b", 2, None, 3.0),  # future attempt
        NodeSucceeded(RUN_ID, "b", 0, None, 3.0),  # attempt never dispatched
        NodeSucceeded(RUN_ID, "a", 1, None, 3.0),  # already completed
        NodeSucceeded(RUN_ID, "d", 1, None, 3.0),  # not dispatched yet
        NodeSucceeded(RUN_ID, "ghost", 1, None, 3.0),  # unknown node
        NodeFailed(RUN_ID, "b", 2, "E", "m", 3.0),
        NodeFailed(RUN_ID, "a", 1, "E", "m", 3.0),
        NodeFailed(RUN_ID, "d", 1, "E", "m", 3.0),
        NodeFailed(RUN_ID, "ghost", 1, "E", "m", 3.0),
        NodeStarted(RUN_ID, "a", 1, "w", 3.0),
        NodeStarted(RUN_ID, "d", 1, "w", 3.0),
        NodeStarted(RUN_ID, "ghost", 1, "w", 3.0),
        AttemptTimedOut(RUN_ID, "b", 2, 3.0),
        AttemptTimedOut(RUN_ID, "a", 1, 3.0),
        RetryDue(RUN_ID, "b", 2, 3.0),  # no retry was scheduled
        RetryDue(RUN_ID, "d", 1, 3.0),
        RunStarted(RUN_ID, 3.0),
    ],
    ids=repr,
)
def test_stale_duplicate_and_unknown_events_change_nothing(event: Event) -> None:
    run = new_run(diamond())
    started(run)
    succeed(run, "a")
    assert_ignored(run, event)


def test_attempt_timed_out_for_an_unknown_node_is_ignored() -> None:
    run = new_run(diamond())
    started(run)
    assert_ignored(run, AttemptTimedOut(RUN_ID, "ghost", 1, 3.0))


def test_retry_due_for_an_unknown_node_is_ignored() -> None:
    run = new_run(diamond())
    started(run)
    assert_ignored(run, RetryDue(RUN_ID, "ghost", 2, 3.0))


def test_events_after_the_run_ended_change_nothing() -> None:
    run = new_run(plan_of(node("a"), node("b")))
    started(run)
    succeed(run, "a")
    fail(run, "b", retryable=False)
    assert run.status is RunStatus.FAILED
    for event in (
        NodeSucceeded(RUN_ID, "b", 1, None, 9.0),
        NodeFailed(RUN_ID, "a", 1, "E", "m", 9.0),
        NodeStarted(RUN_ID, "a", 1, "w", 9.0),
        AttemptTimedOut(RUN_ID, "b", 1, 9.0),
        RetryDue(RUN_ID, "b", 2, 9.0),
        RunStarted(RUN_ID, 9.0),
        CancelRequested(RUN_ID, 9.0),
    ):
        assert_ignored(run, event)


# -- retries ----------------------------------------------------------------------------------------


def test_retry_delay_before_each_attempt() -> None:
    policy = RetryPolicy(
        max_attempts=6, initial_backoff_seconds=2, backoff_multiplier=3, max_backoff_seconds=50
    )
    assert [policy.delay_before(n) for n in (2, 3, 4, 5, 6)] == [2.0, 6.0, 18.0, 50.0, 50.0]
    assert RetryPolicy().delay_before(2) == 1.0


def retry_plan(**policy: Any) -> WorkflowPlan:
    return plan_of(node("a", retry_policy=policy, timeout_seconds=30), node("b", ["a"]))


def test_retryable_failure_schedules_a_retry_with_backoff_then_dispatches_it() -> None:
    run = new_run(retry_plan(max_attempts=3, initial_backoff_seconds=1.5, backoff_multiplier=3))
    started(run, at=1.0)
    handle(run, NodeStarted(RUN_ID, "a", 1, "w1", 2.0))

    assert fail(run, "a", 1, at=100.0, message="first") == [ScheduleRetry(RUN_ID, "a", 2, 101.5)]
    state = run.node("a")
    assert state.status is NodeStatus.PENDING
    assert state.retry_at == 101.5
    assert state.attempt == 1
    assert state.error == ErrorInfo("ValueError", "first")
    assert state.failed_attempts == [FailedAttempt(1, 2.0, 100.0, ErrorInfo("ValueError", "first"))]
    assert run.in_flight == 0
    assert run.finished_count == 0
    assert run.status is RunStatus.RUNNING

    # a late success from the failed attempt is stale
    assert_ignored(run, NodeSucceeded(RUN_ID, "a", 1, "late", 100.5))
    # a RetryDue for the wrong attempt is stale
    assert_ignored(run, RetryDue(RUN_ID, "a", 3, 101.5))
    assert_ignored(run, RetryDue(RUN_ID, "a", 1, 101.5))

    assert handle(run, RetryDue(RUN_ID, "a", 2, 101.5)) == [dispatch("a", 2)]
    assert state.status is NodeStatus.QUEUED
    assert state.attempt == 2
    assert state.retry_at is None
    assert state.started_at is None
    assert state.queued_at == 101.5
    assert run.in_flight == 1
    # the same RetryDue delivered again is stale now
    assert_ignored(run, RetryDue(RUN_ID, "a", 2, 101.6))

    # second failure: backoff grows by the multiplier
    assert fail(run, "a", 2, at=200.0, message="second") == [ScheduleRetry(RUN_ID, "a", 3, 204.5)]
    assert handle(run, RetryDue(RUN_ID, "a", 3, 204.5)) == [dispatch("a", 3)]

    # third attempt succeeds: the child runs, the error is cleared, the history stays
    assert succeed(run, "a", 3, output="ok", at=300.0) == [dispatch("b")]
    assert state.status is NodeStatus.COMPLETED
    assert state.error is None
    assert [f.attempt for f in state.failed_attempts or []] == [1, 2]
    assert [f.error.message for f in state.failed_attempts or []] == ["first", "second"]
    assert run.outputs["a"] == "ok"


def test_backoff_is_capped_at_max_backoff_seconds() -> None:
    run = new_run(
        retry_plan(max_attempts=4, initial_backoff_seconds=10, backoff_multiplier=10, max_backoff_seconds=25)
    )
    started(run)
    assert fail(run, "a", 1, at=0.0) == [ScheduleRetry(RUN_ID, "a", 2, 10.0)]
    handle(run, RetryDue(RUN_ID, "a", 2, 10.0))
    assert fail(run, "a", 2, at=20.0) == [ScheduleRetry(RUN_ID, "a", 3, 45.0)]
    handle(run, RetryDue(RUN_ID, "a", 3, 45.0))
    assert fail(run, "a", 3, at=50.0) == [ScheduleRetry(RUN_ID, "a", 4, 75.0)]


def test_retries_stop_after_max_attempts() -> None:
    run = new_run(retry_plan(max_attempts=2, initial_backoff_seconds=0))
    started(run)
    assert fail(run, "a", 1, at=1.0, message="one") == [ScheduleRetry(RUN_ID, "a", 2, 1.0)]
    handle(run, RetryDue(RUN_ID, "a", 2, 1.0))
    assert fail(run, "a", 2, at=2.0, message="two") == [FinishRun(RUN_ID, RunStatus.FAILED)]
    state = run.node("a")
    assert state.status is NodeStatus.FAILED
    assert state.attempt == 2
    assert state.error == ErrorInfo("ValueError", "two")
    assert state.failed_attempts == [FailedAttempt(1, None, 1.0, ErrorInfo("ValueError", "one"))]
    assert run.node("b").status is NodeStatus.SKIPPED


def test_non_retryable_failure_fails_at_once_despite_a_retry_policy() -> None:
    run = new_run(retry_plan(max_attempts=5))
    started(run)
    commands = fail(run, "a", 1, retryable=False, error_type="PermissionError", message="denied")
    assert commands == [FinishRun(RUN_ID, RunStatus.FAILED)]
    assert run.node("a").status is NodeStatus.FAILED
    assert run.node("a").error == ErrorInfo("PermissionError", "denied")
    assert run.node("a").failed_attempts is None


def test_without_a_retry_policy_a_failure_is_final() -> None:
    run = new_run(plan_of(node("a")))
    started(run)
    assert fail(run, "a") == [FinishRun(RUN_ID, RunStatus.FAILED)]
    assert run.node("a").status is NodeStatus.FAILED


def test_attempt_timed_out_is_a_retryable_failure() -> None:
    run = new_run(retry_plan(max_attempts=2, initial_backoff_seconds=4))
    started(run)
    handle(run, NodeStarted(RUN_ID, "a", 1, "w", 1.0))
    # The worker holding it is told to stop it (it may hang), and a retry is scheduled.
    assert handle(run, AttemptTimedOut(RUN_ID, "a", 1, 31.0)) == [
        CancelAttempts(RUN_ID, (("a", 1),)),
        ScheduleRetry(RUN_ID, "a", 2, 35.0),
    ]
    timeout_error = ErrorInfo("TimeoutError", "attempt 1 exceeded the timeout of 30.0s")
    assert run.node("a").error == timeout_error
    assert run.node("a").failed_attempts == [FailedAttempt(1, 1.0, 31.0, timeout_error)]
    # the worker's late report of attempt 1 is stale
    assert_ignored(run, NodeSucceeded(RUN_ID, "a", 1, "late", 32.0))
    assert_ignored(run, AttemptTimedOut(RUN_ID, "a", 1, 33.0))

    handle(run, RetryDue(RUN_ID, "a", 2, 35.0))
    assert handle(run, AttemptTimedOut(RUN_ID, "a", 2, 70.0)) == [
        CancelAttempts(RUN_ID, (("a", 2),)),
        FinishRun(RUN_ID, RunStatus.FAILED),
    ]
    assert run.node("a").status is NodeStatus.FAILED
    assert run.node("a").error == ErrorInfo("TimeoutError", "attempt 2 exceeded the timeout of 30.0s")


def test_a_start_of_a_node_with_a_timeout_sets_the_orchestrators_deadline() -> None:
    run = new_run(retry_plan(max_attempts=2))
    started(run)
    expected_due = 2.0 + 30 + DEADLINE_GRACE_SECONDS
    assert handle(run, NodeStarted(RUN_ID, "a", 1, "w1", 2.0)) == [
        ScheduleDeadline(RUN_ID, "a", 1, expected_due)
    ]
    # A node without a timeout has no deadline; nor has a repeated start report.
    assert handle(run, NodeStarted(RUN_ID, "a", 1, "w1", 2.0)) == []
    other = new_run(plan_of(node("a")))
    started(other)
    assert handle(other, NodeStarted(RUN_ID, "a", 1, "w1", 2.0)) == []


def test_a_deadline_set_by_an_earlier_start_does_not_time_out_the_attempt_taken_over() -> None:
    run = new_run(retry_plan(max_attempts=2))
    started(run)
    first = handle(run, NodeStarted(RUN_ID, "a", 1, "w1", 2.0))
    # The task was taken over from a silent worker, which started it again 20 s later.
    second = handle(run, NodeStarted(RUN_ID, "a", 1, "w2", 22.0))
    [first_deadline], [second_deadline] = first, second
    assert isinstance(first_deadline, ScheduleDeadline) and isinstance(second_deadline, ScheduleDeadline)

    assert_ignored(run, AttemptTimedOut(RUN_ID, "a", 1, first_deadline.due_at))  # ran 15 s of its 30
    outcome = run.apply(AttemptTimedOut(RUN_ID, "a", 1, second_deadline.due_at))
    assert outcome is not None and outcome.commands == [
        CancelAttempts(RUN_ID, (("a", 1),)),
        ScheduleRetry(RUN_ID, "a", 2, second_deadline.due_at + 1),
    ]
    assert outcome.entry.error == ErrorInfo("TimeoutError", "attempt 1 exceeded the timeout of 30.0s")


def test_a_deadline_after_the_attempt_ended_changes_nothing() -> None:
    run = new_run(retry_plan(max_attempts=2))
    started(run)
    [deadline] = handle(run, NodeStarted(RUN_ID, "a", 1, "w1", 2.0))
    succeed(run, "a", at=3.0)
    assert isinstance(deadline, ScheduleDeadline)
    assert_ignored(run, AttemptTimedOut(RUN_ID, "a", 1, deadline.due_at))


def test_attempt_timed_out_on_a_queued_attempt_counts_too() -> None:
    run = new_run(plan_of(node("a", timeout_seconds=5)))
    started(run)
    assert handle(run, AttemptTimedOut(RUN_ID, "a", 1, 6.0)) == [
        CancelAttempts(RUN_ID, (("a", 1),)),
        FinishRun(RUN_ID, RunStatus.FAILED),
    ]
    assert run.node("a").error is not None
    assert run.node("a").error.type == "TimeoutError"


# -- terminal failure -------------------------------------------------------------------------------


def failure_plan() -> WorkflowPlan:
    """root -> bad -> (c1 -> c2, c3); c2 also needs ok; root -> ok -> after_ok; solo is independent."""
    return plan_of(
        node("root"),
        node("bad", ["root"]),
        node("c1", ["bad"]),
        node("c2", ["c1", "ok"]),
        node("c3", ["bad"]),
        node("ok", ["root"]),
        node("after_ok", ["ok"]),
        node("solo"),
    )


def test_terminal_failure_skips_descendants_and_independent_branches_finish() -> None:
    run = new_run(failure_plan())
    assert started(run) == [dispatch("root"), dispatch("solo")]
    assert succeed(run, "root", at=2.0) == [dispatch("bad"), dispatch("ok")]

    commands = fail(run, "bad", at=3.0, retryable=True, error_type="KeyError", message="no such row")
    assert commands == []  # ok and solo are still in flight
    assert run.status is RunStatus.RUNNING
    bad = run.node("bad")
    assert bad.status is NodeStatus.FAILED
    assert bad.error == ErrorInfo("KeyError", "no such row")
    assert bad.finished_at == 3.0
    for skipped in ("c1", "c2", "c3"):
        state = run.node(skipped)
        assert state.status is NodeStatus.SKIPPED
        assert state.error == ErrorInfo(UPSTREAM_FAILED, "skipped because upstream node 'bad' failed")
        assert state.finished_at == 3.0
        assert state.attempt == 0
    assert run.failed_nodes == 1
    assert run.finished_count == 5  # root, bad, c1, c2, c3
    assert run.in_flight == 2  # ok, solo

    # ok succeeding must not revive c2 (one of its parents failed)
    assert succeed(run, "ok", at=4.0) == [dispatch("after_ok")]
    assert run.node("c2").status is NodeStatus.SKIPPED
    assert succeed(run, "solo", at=5.0) == []
    assert succeed(run, "after_ok", at=6.0) == [FinishRun(RUN_ID, RunStatus.FAILED)]

    assert run.status is RunStatus.FAILED
    assert run.finished_at == 6.0
    assert statuses(run) == {
        "root": NodeStatus.COMPLETED,
        "bad": NodeStatus.FAILED,
        "c1": NodeStatus.SKIPPED,
        "c2": NodeStatus.SKIPPED,
        "c3": NodeStatus.SKIPPED,
        "ok": NodeStatus.COMPLETED,
        "after_ok": NodeStatus.COMPLETED,
        "solo": NodeStatus.COMPLETED,
    }
    assert run.finished_count == 8
    assert run.in_flight == 0


def test_two_failures_both_recorded_and_run_fails_once() -> None:
    run = new_run(plan_of(node("a"), node("b"), node("c", ["a"]), node("d", ["b"])))
    started(run)
    assert fail(run, "a", retryable=False) == []
    assert fail(run, "b", retryable=False) == [FinishRun(RUN_ID, RunStatus.FAILED)]
    assert run.failed_nodes == 2
    assert run.node("c").error is not None and "'a'" in run.node("c").error.message
    assert run.node("d").error is not None and "'b'" in run.node("d").error.message


def test_skip_walks_a_diamond_once() -> None:
    run = new_run(diamond())
    started(run)
    assert fail(run, "a", retryable=False) == [FinishRun(RUN_ID, RunStatus.FAILED)]
    assert run.unfinished == 0
    assert run.finished_count == 4
    assert [run.node(n).status for n in "bcd"] == [NodeStatus.SKIPPED] * 3


# -- cancellation -----------------------------------------------------------------------------------


def test_cancel_requested_cancels_every_unfinished_node_and_ignores_later_results() -> None:
    run = new_run(
        plan_of(
            node("a"),
            node("r", retry_policy={"max_attempts": 3}),
            node("b", ["a"]),
            node("c", ["b"]),
            node("d", ["a"]),
        )
    )
    started(run)
    succeed(run, "a", at=2.0)  # dispatches b and d
    handle(run, NodeStarted(RUN_ID, "b", 1, "w", 2.5))
    fail(run, "r", 1, at=2.6)  # r waits for a retry
    assert run.node("r").retry_at is not None

    # The workers holding b and d (in flight; r waits for a retry: nobody holds it) are told.
    assert handle(run, CancelRequested(RUN_ID, 3.0)) == [
        CancelAttempts(RUN_ID, (("b", 1), ("d", 1))),
        FinishRun(RUN_ID, RunStatus.CANCELLED),
    ]
    assert run.status is RunStatus.CANCELLED
    assert run.finished_at == 3.0
    assert statuses(run) == {
        "a": NodeStatus.COMPLETED,
        "r": NodeStatus.CANCELLED,
        "b": NodeStatus.CANCELLED,
        "c": NodeStatus.CANCELLED,
        "d": NodeStatus.CANCELLED,
    }
    assert run.node("a").finished_at == 2.0
    assert run.node("c").finished_at == 3.0
    assert run.node("r").retry_at is None
    assert run.finished_count == 5
    assert run.in_flight == 0

    for event in (
        NodeSucceeded(RUN_ID, "b", 1, "late", 4.0),
        NodeFailed(RUN_ID, "d", 1, "E", "m", 4.0),
        NodeStarted(RUN_ID, "d", 1, "w", 4.0),
        AttemptTimedOut(RUN_ID, "b", 1, 4.0),
        RetryDue(RUN_ID, "r", 2, 4.0),
        CancelRequested(RUN_ID, 5.0),
        RunStarted(RUN_ID, 5.0),
    ):
        assert_ignored(run, event)


def test_cancel_before_start() -> None:
    run = new_run(diamond())
    assert handle(run, CancelRequested(RUN_ID, 1.0)) == [FinishRun(RUN_ID, RunStatus.CANCELLED)]
    assert set(statuses(run).values()) == {NodeStatus.CANCELLED}
    assert_ignored(run, RunStarted(RUN_ID, 2.0))


def test_cancel_after_completion_is_ignored() -> None:
    run = new_run(plan_of(node("a")))
    started(run)
    succeed(run, "a")
    assert_ignored(run, CancelRequested(RUN_ID, 9.0))
    assert run.status is RunStatus.COMPLETED


# -- dead-lettered starts and retries ----------------------------------------------------------------


def test_a_dead_lettered_start_fails_the_run_and_skips_every_node_with_the_reason() -> None:
    run = new_run(diamond())
    reason = "event RunStarted delivered 5 times"

    assert handle(run, EventDeadLettered(RUN_ID, None, 0, reason, 3.0)) == [
        FinishRun(RUN_ID, RunStatus.FAILED)
    ]

    assert (run.status, run.finished_at, run.unfinished, run.in_flight) == (RunStatus.FAILED, 3.0, 0, 0)
    assert set(statuses(run).values()) == {NodeStatus.SKIPPED}
    assert {run.node(n).error for n in "abcd"} == {ErrorInfo(DEAD_LETTERED, reason)}
    assert {run.node(n).attempt for n in "abcd"} == {0}
    # The start, delivered after all (or the same news again), changes nothing.
    assert_ignored(run, RunStarted(RUN_ID, 4.0))
    assert_ignored(run, EventDeadLettered(RUN_ID, None, 0, reason, 5.0))


def test_a_dead_lettered_start_of_a_run_that_started_after_all_changes_nothing() -> None:
    run = new_run(diamond())
    started(run)
    assert_ignored(run, EventDeadLettered(RUN_ID, None, 0, "event RunStarted delivered 5 times", 3.0))
    assert run.status is RunStatus.RUNNING


def test_a_dead_lettered_retry_fails_its_node_for_good_and_the_run_goes_on() -> None:
    run = new_run(plan_of(node("a", retry_policy={"max_attempts": 3}), node("b", ["a"]), node("c")))
    started(run)
    fail(run, "a", 1, at=2.0, message="flaky")
    reason = "event RetryDue delivered 5 times"

    # Only news of the retry the node waits for counts.
    assert_ignored(run, EventDeadLettered(RUN_ID, "a", 3, reason, 3.0))
    assert_ignored(run, EventDeadLettered(RUN_ID, "a", 1, reason, 3.0))
    assert_ignored(run, EventDeadLettered(RUN_ID, "nope", 2, reason, 3.0))
    outcome = run.apply(EventDeadLettered(RUN_ID, "a", 2, reason, 3.0))
    assert outcome is not None and outcome.commands == []

    a = run.node("a")
    assert (a.status, a.attempt, a.retry_at, a.finished_at) == (NodeStatus.FAILED, 1, None, 3.0)
    assert a.error == ErrorInfo(DEAD_LETTERED, reason)
    assert [f.error.message for f in a.failed_attempts or []] == ["flaky"]
    assert run.node("b").status is NodeStatus.SKIPPED
    assert outcome.entry.skipped == ("b",)
    assert run.status is RunStatus.RUNNING  # c is still in flight
    # The retry, delivered after all, dispatches nothing; c's end finishes the run, FAILED.
    assert_ignored(run, RetryDue(RUN_ID, "a", 2, 4.0))
    assert succeed(run, "c", at=5.0) == [FinishRun(RUN_ID, RunStatus.FAILED)]


def test_a_dead_lettered_retry_after_the_retry_was_dispatched_changes_nothing() -> None:
    run = new_run(retry_plan(max_attempts=3))
    started(run)
    fail(run, "a", 1)
    handle(run, RetryDue(RUN_ID, "a", 2, 3.0))
    assert_ignored(run, EventDeadLettered(RUN_ID, "a", 2, "event RetryDue delivered 5 times", 4.0))
    assert run.node("a").status is NodeStatus.QUEUED


# -- idempotence and counters -----------------------------------------------------------------------


def test_every_event_applied_twice_changes_nothing_the_second_time() -> None:
    plan = plan_of(
        node("a", retry_policy={"max_attempts": 2, "initial_backoff_seconds": 1}, timeout_seconds=10),
        node("b", ["a"]),
        node("c", ["a"], retry_policy={"max_attempts": 3}),
        node("d", ["b", "c"]),
        node("e"),
        node("f", ["e"]),
    )
    run = new_run(plan)
    script: list[Event] = [
        RunStarted(RUN_ID, 1.0),
        NodeStarted(RUN_ID, "a", 1, "w1", 2.0),
        AttemptTimedOut(RUN_ID, "a", 1, 12.0),
        RetryDue(RUN_ID, "a", 2, 13.0),
        NodeStarted(RUN_ID, "a", 2, "w2", 14.0),
        NodeSucceeded(RUN_ID, "a", 2, {"x": 1}, 15.0),
        NodeStarted(RUN_ID, "e", 1, "w1", 15.5),
        NodeFailed(RUN_ID, "e", 1, "E", "no", 16.0, retryable=False),
        NodeFailed(RUN_ID, "c", 1, "E", "flaky", 17.0),
        RetryDue(RUN_ID, "c", 2, 18.0),
        NodeSucceeded(RUN_ID, "b", 1, "b-out", 19.0),
        NodeSucceeded(RUN_ID, "c", 2, "c-out", 20.0),
        NodeSucceeded(RUN_ID, "d", 1, "d-out", 21.0),
    ]
    finishes = []
    for event in script:
        first = handle(run, event)
        finishes += [c for c in first if isinstance(c, FinishRun)]
        after_first = snapshot(run)
        assert run.apply(event) is None, event
        assert snapshot(run) == after_first, event
    assert finishes == [FinishRun(RUN_ID, RunStatus.FAILED)]
    assert statuses(run) == {
        "a": NodeStatus.COMPLETED,
        "b": NodeStatus.COMPLETED,
        "c": NodeStatus.COMPLETED,
        "d": NodeStatus.COMPLETED,
        "e": NodeStatus.FAILED,
        "f": NodeStatus.SKIPPED,
    }
    assert [run.node(n).attempt for n in "abcdef"] == [2, 1, 2, 1, 1, 0]


def test_counters_follow_the_run() -> None:
    run = new_run(plan_of(node("a"), node("b"), node("c", ["a", "b"])))
    assert (run.finished_count, run.in_flight) == (0, 0)
    started(run)
    assert (run.finished_count, run.in_flight) == (0, 2)
    handle(run, NodeStarted(RUN_ID, "a", 1, "w", 1.0))
    assert (run.finished_count, run.in_flight) == (0, 2)
    succeed(run, "a")
    assert (run.finished_count, run.in_flight) == (1, 1)
    succeed(run, "b")
    assert (run.finished_count, run.in_flight) == (2, 1)
    succeed(run, "c")
    assert (run.finished_count, run.in_flight) == (3, 0)
    assert run.unfinished == 0
