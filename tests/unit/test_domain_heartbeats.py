"""Heartbeats, heartbeat timeouts and the default attempt deadline in the run aggregate."""

from __future__ import annotations

from typing import Any

from domain_builders import RUN_ID, handle, new_run, node, plan_of, problems_of, workflow

from domain.events import (
    AttemptTimedOut,
    CancelAttempts,
    HeartbeatReceived,
    NodeStarted,
    NodeSucceeded,
    RetryDue,
    RunStarted,
    ScheduleDeadline,
    ScheduleRetry,
)
from domain.history import EntryKind, HistoryEntry
from domain.plan import WorkflowPlan
from domain.run import DEADLINE_GRACE_SECONDS, Run
from domain.statuses import NodeStatus
from domain.validation import build_plan

RETRY = {"max_attempts": 2, "initial_backoff_seconds": 1}


def beating_run(**node_keys: Any) -> Run:
    """A run of one node ``a`` with a heartbeat timeout of 10 s, started and dispatched at 0."""
    run = new_run(plan_of(node("a", heartbeat_timeout_seconds=10, **node_keys)))
    handle(run, _run_started())
    return run


def _run_started() -> RunStarted:
    return RunStarted(RUN_ID, 0.0)


def beat(at: float, details: Any = None, attempt: int = 1, worker: str = "w1") -> HeartbeatReceived:
    return HeartbeatReceived(RUN_ID, "a", attempt, at, worker, 1.0, details)


def test_heartbeat_timeout_is_validated_and_compiled() -> None:
    plan = plan_of(node("a", heartbeat_timeout_seconds=2.5), node("b"))
    assert plan.node("a").heartbeat_timeout_seconds == 2.5
    assert plan.node("b").heartbeat_timeout_seconds is None
    problems = problems_of(workflow(node("a", heartbeat_timeout_seconds=0)))
    assert [p.path for p in problems] == ["$.dag.nodes[0].heartbeat_timeout_seconds"]
    assert "greater than 0" in problems[0].message
    problems = problems_of(workflow(node("a", heartbeat_timeout_seconds="soon")))
    assert [p.path for p in problems] == ["$.dag.nodes[0].heartbeat_timeout_seconds"]
    problems = problems_of(
        workflow(node("a", for_each="{{ workflow.input.urls }}", heartbeat_timeout_seconds=5))
    )
    assert [(p.path, p.message) for p in problems] == [
        (
            "$.dag.nodes[0].heartbeat_timeout_seconds",
            "node 'a': heartbeat_timeout_seconds is not supported on a map node (for_each) yet",
        )
    ]


def test_a_start_sets_the_heartbeat_deadline_and_each_beat_moves_it() -> None:
    run = beating_run()
    assert handle(run, NodeStarted(RUN_ID, "a", 1, "w1", 1.0)) == [ScheduleDeadline(RUN_ID, "a", 1, 11.0)]
    outcome = run.apply(beat(4.0, {"done": 3, "of": 10}))
    assert outcome is not None
    assert outcome.commands == [ScheduleDeadline(RUN_ID, "a", 1, 14.0)]
    assert outcome.entry == HistoryEntry(
        EntryKind.HEARTBEAT_RECEIVED, 4.0, "a", 1, "w1", progress={"done": 3, "of": 10}
    )
    assert outcome.entry.to_json()["progress"] == {"done": 3, "of": 10}
    state = run.node("a")
    assert (state.heartbeat_at, state.progress) == (4.0, {"done": 3, "of": 10})
    # A beat without details keeps the progress last reported; a reordered older one changes nothing.
    assert handle(run, beat(6.0)) == [ScheduleDeadline(RUN_ID, "a", 1, 16.0)]
    assert (state.heartbeat_at, state.progress) == (6.0, {"done": 3, "of": 10})
    assert run.apply(beat(5.0, {"done": 4})) is None
    assert state.progress == {"done": 3, "of": 10}


def test_a_stale_deadline_changes_nothing_and_silence_times_the_attempt_out() -> None:
    run = beating_run(retry_policy=RETRY)
    handle(run, NodeStarted(RUN_ID, "a", 1, "w1", 1.0))
    handle(run, beat(4.0))
    assert run.apply(AttemptTimedOut(RUN_ID, "a", 1, 11.0)) is None  # set at the start: beaten since
    outcome = run.apply(AttemptTimedOut(RUN_ID, "a", 1, 14.0))
    assert outcome is not None
    # The worker holding the hung attempt is told to stop it; the attempt is retried like a timeout.
    assert outcome.commands == [CancelAttempts(RUN_ID, (("a", 1),)), ScheduleRetry(RUN_ID, "a", 2, 15.0)]
    assert outcome.entry.error is not None and outcome.entry.error.type == "TimeoutError"
    assert "sent no heartbeat for 10.0s" in outcome.entry.error.message
    assert "heartbeat timeout" in outcome.entry.error.message
    # Beats of the attempt that timed out are stale.
    assert run.apply(beat(14.5)) is None
    handle(run, RetryDue(RUN_ID, "a", 2, 15.0))
    state = run.node("a")
    assert (state.status, state.heartbeat_at, state.progress) == (NodeStatus.QUEUED, None, None)


def test_a_beat_before_the_start_report_counts_as_the_start() -> None:
    run = beating_run(timeout_seconds=60)
    outcome = run.apply(HeartbeatReceived(RUN_ID, "a", 1, 1.5, "w1", 1.0, "warming up"))
    assert outcome is not None
    assert outcome.commands == [
        ScheduleDeadline(RUN_ID, "a", 1, 1.0 + 60 + DEADLINE_GRACE_SECONDS),
        ScheduleDeadline(RUN_ID, "a", 1, 11.0),
        ScheduleDeadline(RUN_ID, "a", 1, 11.5),
    ]
    state = run.node("a")
    assert (state.status, state.started_at, state.worker_id) == (NodeStatus.RUNNING, 1.0, "w1")
    assert handle(run, NodeStarted(RUN_ID, "a", 1, "w1", 1.0)) == []  # the late start report
    assert state.progress == "warming up"


def test_an_attempt_that_keeps_beating_outlives_its_heartbeat_timeout_but_not_its_timeout() -> None:
    run = beating_run(timeout_seconds=30)
    handle(run, NodeStarted(RUN_ID, "a", 1, "w1", 0.0))
    for second in range(5, 40, 5):
        handle(run, beat(float(second)))
    assert run.apply(AttemptTimedOut(RUN_ID, "a", 1, 20.0)) is None
    outcome = run.apply(AttemptTimedOut(RUN_ID, "a", 1, 30.0 + DEADLINE_GRACE_SECONDS))
    assert outcome is not None and outcome.entry.error is not None
    assert outcome.entry.error.message == "attempt 1 exceeded the timeout of 30.0s"


def test_heartbeats_of_a_node_without_a_heartbeat_timeout_set_no_deadline() -> None:
    run = new_run(plan_of(node("a")))
    handle(run, _run_started())
    handle(run, NodeStarted(RUN_ID, "a", 1, "w1", 1.0))
    outcome = run.apply(HeartbeatReceived(RUN_ID, "a", 1, 2.0, "w1", 1.0, [1, 2]))
    assert outcome is not None and outcome.commands == []
    assert run.node("a").progress == [1, 2]
    handle(run, NodeSucceeded(RUN_ID, "a", 1, "ok", 3.0))
    assert run.apply(HeartbeatReceived(RUN_ID, "a", 1, 4.0, "w1", 1.0, [3])) is None  # after its end
    assert run.node("a").progress == [1, 2]  # the last progress stays on view


def default_plan(**node_keys: Any) -> WorkflowPlan:
    return build_plan(workflow(node("a", **node_keys)), default_attempt_timeout_seconds=100.0)


def test_a_node_without_any_timeout_gets_the_default_attempt_deadline() -> None:
    run = new_run(default_plan())
    handle(run, _run_started())
    [deadline] = handle(run, NodeStarted(RUN_ID, "a", 1, "w1", 1.0))
    assert deadline == ScheduleDeadline(RUN_ID, "a", 1, 1.0 + 100)  # no worker enforces it: no grace
    outcome = run.apply(AttemptTimedOut(RUN_ID, "a", 1, deadline.due_at))
    assert outcome is not None and outcome.entry.error is not None
    assert outcome.entry.error.message == (
        "attempt 1 exceeded the default attempt timeout of 100.0s (its node sets no timeout)"
    )


def test_a_node_with_a_timeout_of_either_kind_does_not_get_the_default() -> None:
    own = new_run(default_plan(timeout_seconds=7))
    handle(own, _run_started())
    assert handle(own, NodeStarted(RUN_ID, "a", 1, "w1", 1.0)) == [
        ScheduleDeadline(RUN_ID, "a", 1, 8.0 + DEADLINE_GRACE_SECONDS)
    ]
    beating = new_run(default_plan(heartbeat_timeout_seconds=7))
    handle(beating, _run_started())
    assert handle(beating, NodeStarted(RUN_ID, "a", 1, "w1", 1.0)) == [ScheduleDeadline(RUN_ID, "a", 1, 8.0)]
    # Without the setting (None), a node without a timeout has no deadline at all.
    plain = new_run(plan_of(node("a")))
    handle(plain, _run_started())
    assert handle(plain, NodeStarted(RUN_ID, "a", 1, "w1", 1.0)) == []
