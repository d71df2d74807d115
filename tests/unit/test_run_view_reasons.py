"""The run view's ``reason`` of a node (``services.application.explain``), word for word: waiting for a
retry, skipped because of a parent or of its condition, cancelled with the run (and on whose request),
by a fail-fast or by the run's timeout."""

from __future__ import annotations

from domain_builders import RUN_ID, handle, new_run, node, workflow

from domain.events import CancelRequested, NodeFailed, NodeStarted, NodeSucceeded, RunStarted, RunTimedOut
from domain.run import Run
from domain.validation import build_plan
from services.application.run_view import run_view

RETRY = {"max_attempts": 2, "initial_backoff_seconds": 5}


def reasons(run: Run) -> dict[str, str | None]:
    return {node_id: view.reason for node_id, view in run_view(run).nodes.items()}


def started(*nodes: dict, **workflow_keys: object) -> Run:
    """A run of these nodes, started at 1.0; ``workflow_keys``: ``on_failure``, ``timeout_seconds``."""
    run = new_run(build_plan({**workflow(*nodes), **workflow_keys}))
    handle(run, RunStarted(RUN_ID, 1.0))
    return run


def fail(run: Run, node_id: str, at: float, *, attempt: int = 1, retryable: bool = True) -> None:
    handle(run, NodeFailed(RUN_ID, node_id, attempt, "IOError", f"{node_id} broke", at, retryable))


def test_a_node_waiting_for_its_retry_says_which_attempt_and_when() -> None:
    run = started(node("flaky", retry_policy=RETRY), node("after", ["flaky"]))
    fail(run, "flaky", 10.0)

    said = reasons(run)

    assert said["flaky"] == "waiting for attempt 2, due at 1970-01-01T00:00:15.000Z"
    assert said["after"] == "waiting on flaky"


def test_a_node_skipped_because_of_a_parent_names_it() -> None:
    run = started(
        node("bad"),
        node("good"),
        node("strict", ["bad"]),
        node("chained", ["strict"]),
        node("only_failures", ["good"], trigger_rule="all_failed"),
    )
    fail(run, "bad", 2.0, retryable=False)
    handle(run, NodeSucceeded(RUN_ID, "good", 1, {}, 3.0))

    said = reasons(run)

    assert said["strict"] == "skipped because upstream node 'bad' failed"
    assert said["chained"] == "skipped because upstream node 'bad' failed"  # the failure began the chain
    assert said["only_failures"] == "trigger rule all_failed cannot hold: upstream node 'good' succeeded"


def test_a_node_skipped_because_of_its_condition_gives_the_condition_and_the_values_it_saw() -> None:
    run = started(node("check"), node("branch", ["check"], when="{{ check.go }} == true"))
    handle(run, NodeSucceeded(RUN_ID, "check", 1, {"go": False}, 2.0))

    assert reasons(run)["branch"] == "condition false: {{ check.go }} == true (saw {{ check.go }} = false)"


def test_a_node_cancelled_with_the_run_names_who_asked_when_known() -> None:
    for by, expected in (
        (None, "cancelled with the run, on request"),
        ("ada", "cancelled with the run, on request of ada"),
    ):
        run = started(node("busy"), node("after", ["busy"]))
        handle(run, NodeStarted(RUN_ID, "busy", 1, "w-1", 2.0))
        handle(run, CancelRequested(RUN_ID, 3.0, by))

        said = reasons(run)

        assert said == {"busy": expected, "after": expected}
        assert run_view(run).cancelled_by == by


def test_a_node_cancelled_while_waiting_for_its_retry_is_not_explained_by_its_failed_attempt() -> None:
    run = started(node("flaky", retry_policy=RETRY))
    fail(run, "flaky", 2.0)
    handle(run, CancelRequested(RUN_ID, 3.0, "ada"))

    view = run_view(run).nodes["flaky"]

    assert view.error is not None and view.error.message == "flaky broke"  # the last error recorded
    assert view.reason == "cancelled with the run, on request of ada"


def test_a_node_cancelled_by_a_fail_fast_names_the_node_that_failed() -> None:
    run = started(node("bad"), node("busy"), on_failure="fail_fast")
    fail(run, "bad", 2.0, retryable=False)

    assert reasons(run)["busy"] == "cancelled because node 'bad' failed and the workflow fails fast"


def test_a_node_cancelled_by_the_run_timeout_says_so() -> None:
    run = started(node("flaky", retry_policy=RETRY), timeout_seconds=30)
    fail(run, "flaky", 2.0)  # waiting for its retry: it carries its attempt's error
    handle(run, RunTimedOut(RUN_ID, 31.0))

    assert reasons(run)["flaky"] == "the run did not finish within 30.0s"
