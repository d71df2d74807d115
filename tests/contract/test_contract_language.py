"""The workflow language on every backend: trigger rules (one test per row of the README's table),
conditions, fail-fast, optional nodes, the run's output mapping and timeout, retry_on and jitter.

Every scenario goes through the ``Driver``, which checks after each event that the store's run and
history are exactly those of the reference aggregate (``domain.run.Run``).
"""

from __future__ import annotations

import pytest
from contract_support import T0, Backend, Driver, add_run, drain, finishes, node, nothing_waiting, workflow

from domain.events import FinishRun, NodeFailed, NodeStarted, NodeSucceeded, RunTimedOut
from domain.node_state import ErrorInfo
from domain.reasons import CONDITION_FALSE, FAIL_FAST, OUTPUT_ERROR, RUN_TIMED_OUT, UPSTREAM_FAILED
from domain.statuses import NodeStatus, RunStatus

S, F, K = "succeeded", "failed", "skipped"

# The README's table, "Trigger rules": for two parents ending as given, whether the child runs.
RULE_TABLE: dict[str, dict[tuple[str, str], bool]] = {
    "all_success": {(S, S): True, (S, F): False, (F, F): False, (S, K): False, (K, K): False, (F, K): False},
    "all_failed": {(S, S): False, (S, F): False, (F, F): True, (S, K): False, (K, K): False, (F, K): False},
    "all_done": {(S, S): True, (S, F): True, (F, F): True, (S, K): True, (K, K): True, (F, K): True},
    "always": {(S, S): True, (S, F): True, (F, F): True, (S, K): True, (K, K): True, (F, K): True},
    "one_success": {(S, S): True, (S, F): True, (F, F): False, (S, K): True, (K, K): False, (F, K): False},
    "one_failed": {(S, S): False, (S, F): True, (F, F): True, (S, K): False, (K, K): False, (F, K): True},
    "none_failed": {(S, S): True, (S, F): False, (F, F): False, (S, K): True, (K, K): True, (F, K): False},
    "none_failed_min_one_success": {
        (S, S): True,
        (S, F): False,
        (F, F): False,
        (S, K): True,
        (K, K): False,
        (F, K): False,
    },
}
ROWS = [(rule, parents, runs) for rule, cases in RULE_TABLE.items() for parents, runs in cases.items()]


async def started(backend: Backend, raw: dict, run_input: dict | None = None) -> Driver:
    driver = Driver(backend, await add_run(backend, raw, run_input))
    await driver.begin()
    return driver


async def succeed(driver: Driver, node_id: str, output: object, at: float, attempt: int = 1) -> list:
    return await driver.deliver(NodeSucceeded(driver.run_id, node_id, attempt, output, at))


async def fail(
    driver: Driver, node_id: str, at: float, *, kind: str = "RuntimeError", retryable: bool = False
) -> list:
    return await driver.deliver(
        NodeFailed(driver.run_id, node_id, 1, kind, f"{node_id} broke", at, retryable)
    )


def gated(node_id: str, **keys: object) -> dict:
    """A root that runs only when the run's input says so (``{"<id>": true}``): else it is skipped."""
    return node(node_id, when=f"{{{{ workflow.input.{node_id} }}}}", **keys)


@pytest.mark.parametrize(("rule", "parents", "runs"), ROWS, ids=[f"{r}-{p[0]}-{p[1]}" for r, p, _ in ROWS])
async def test_trigger_rule_table(backend: Backend, rule: str, parents: tuple[str, str], runs: bool) -> None:
    raw = workflow(gated("p1"), gated("p2"), node("child", ["p1", "p2"], trigger_rule=rule))
    driver = await started(backend, raw, {"p1": parents[0] != K, "p2": parents[1] != K})
    dispatched = [p for p, outcome in zip(("p1", "p2"), parents, strict=True) if outcome != K]
    await driver.take_tasks(len(dispatched))
    for at, (parent, outcome) in enumerate(zip(("p1", "p2"), parents, strict=True), start=1):
        if outcome == S:
            await succeed(driver, parent, {"from": parent}, T0 + at)
        elif outcome == F:
            await fail(driver, parent, T0 + at)

    child = (await driver.get()).node("child")
    if runs:
        assert child.status is NodeStatus.QUEUED, child
        assert await driver.take_tasks(1, exactly=True) == [driver.task("child")]
        await succeed(driver, "child", "ran", T0 + 10)
        assert (await driver.get()).node("child").status is NodeStatus.COMPLETED
    else:
        assert child.status is NodeStatus.SKIPPED, child
        assert child.attempt == 0
        assert child.error is not None and ("'p1'" in child.error.message or "'p2'" in child.error.message)
        assert await nothing_waiting(backend.tasks, "worker")
    run = await driver.get()
    assert run.status is (RunStatus.FAILED if F in parents else RunStatus.COMPLETED)


async def test_all_success_skips_at_once_when_a_parent_fails(backend: Backend) -> None:
    raw = workflow(node("slow"), node("bad"), node("join", ["slow", "bad"]), node("after", ["join"]))
    driver = await started(backend, raw)
    await driver.take_tasks(2)

    await fail(driver, "bad", T0 + 1)

    run = await driver.get()
    assert run.status is RunStatus.RUNNING  # "slow" is still in flight
    for skipped in ("join", "after"):
        assert run.node(skipped).status is NodeStatus.SKIPPED
        # A chain of skips names the node whose failure began it.
        assert run.node(skipped).error == ErrorInfo(
            UPSTREAM_FAILED, "skipped because upstream node 'bad' failed"
        )
    assert finishes(await succeed(driver, "slow", 1, T0 + 2)) == [FinishRun(driver.run_id, RunStatus.FAILED)]


@pytest.mark.parametrize(("rule", "outcome"), [("one_success", S), ("one_failed", F)])
async def test_a_rule_that_holds_early_fires_at_once(backend: Backend, rule: str, outcome: str) -> None:
    raw = workflow(node("first"), node("slow"), node("child", ["first", "slow"], trigger_rule=rule))
    driver = await started(backend, raw)
    await driver.take_tasks(2)

    if outcome == S:
        await succeed(driver, "first", 1, T0 + 1)
    else:
        await fail(driver, "first", T0 + 1)

    assert await driver.take_tasks(1, exactly=True) == [driver.task("child")]
    await succeed(driver, "child", "early", T0 + 2)
    await succeed(driver, "slow", 2, T0 + 3)  # the late parent changes nothing for the child
    run = await driver.get()
    assert run.node("child").status is NodeStatus.COMPLETED
    assert run.node("child").attempt == 1
    assert run.status is (RunStatus.COMPLETED if outcome == S else RunStatus.FAILED)


async def test_a_rule_that_can_no_longer_hold_skips_at_once(backend: Backend) -> None:
    raw = workflow(node("first"), node("slow"), node("child", ["first", "slow"], trigger_rule="all_failed"))
    driver = await started(backend, raw)
    await driver.take_tasks(2)

    await succeed(driver, "first", 1, T0 + 1)

    child = (await driver.get()).node("child")
    assert child.status is NodeStatus.SKIPPED
    assert child.error is not None
    assert child.error.message == "trigger rule all_failed cannot hold: upstream node 'first' succeeded"


async def test_a_false_condition_skips_the_node_and_its_all_success_dependents(backend: Backend) -> None:
    raw = workflow(
        node("check"),
        node("branch", ["check"], when="{{ check.go }}"),
        node("after_branch", ["branch"]),
        node("join", ["branch", "check"], trigger_rule="none_failed_min_one_success"),
    )
    driver = await started(backend, raw)
    await driver.take_tasks(1)

    await succeed(driver, "check", {"go": False}, T0 + 1)

    run = await driver.get()
    branch = run.node("branch")
    assert (branch.status, branch.attempt) == (NodeStatus.SKIPPED, 0)
    assert branch.error is not None and branch.error.type == CONDITION_FALSE
    assert "{{ check.go }}" in branch.error.message
    assert run.node("after_branch").status is NodeStatus.SKIPPED
    assert await driver.take_tasks(1, exactly=True) == [driver.task("join")]
    await succeed(driver, "join", "joined", T0 + 2)
    assert (await driver.get()).status is RunStatus.COMPLETED


async def test_a_true_condition_runs_the_node(backend: Backend) -> None:
    raw = workflow(node("check"), node("branch", ["check"], when="{{ check.go }}"))
    driver = await started(backend, raw)
    await driver.take_tasks(1)
    await succeed(driver, "check", {"go": True}, T0 + 1)
    assert await driver.take_tasks(1, exactly=True) == [driver.task("branch")]


async def test_a_condition_on_a_large_staged_output(backend: Backend) -> None:
    """A success whose output is staged apart from its event (large) is read for the decision."""
    big = {"go": True, "padding": "x" * 5000}
    raw = workflow(node("check"), node("branch", ["check"], when="{{ check.go }}"))
    driver = await started(backend, raw)
    await driver.take_tasks(1)
    await succeed(driver, "check", big, T0 + 1)
    assert await driver.take_tasks(1, exactly=True) == [driver.task("branch")]
    assert (await driver.get()).outputs["check"] == big


async def test_a_condition_that_cannot_be_evaluated_fails_the_node(backend: Backend) -> None:
    raw = workflow(node("check"), node("branch", ["check"], when="{{ check.missing }}"))
    driver = await started(backend, raw)
    await driver.take_tasks(1)
    commands = await succeed(driver, "check", {"go": True}, T0 + 1)
    assert finishes(commands) == [FinishRun(driver.run_id, RunStatus.FAILED)]
    branch = (await driver.get()).node("branch")
    assert branch.status is NodeStatus.FAILED
    assert branch.error is not None and "missing" in branch.error.message


async def test_fail_fast_cancels_what_is_unfinished_but_runs_always_clean_up(backend: Backend) -> None:
    raw = workflow(
        node("bad"),
        node("busy"),
        node("later", ["busy"]),
        node("cleanup", ["bad", "busy"], trigger_rule="always"),
    )
    raw["on_failure"] = "fail_fast"
    driver = await started(backend, raw)
    await driver.take_tasks(2)
    await driver.deliver(NodeStarted(driver.run_id, "busy", 1, "w", T0 + 1))

    await fail(driver, "bad", T0 + 2)

    run = await driver.get()
    assert run.status is RunStatus.RUNNING  # the clean-up step still has to run
    for cancelled in ("busy", "later"):
        state = run.node(cancelled)
        assert state.status is NodeStatus.CANCELLED
        assert state.error is not None and state.error.type == FAIL_FAST and "'bad'" in state.error.message
    assert await driver.take_tasks(1, exactly=True) == [driver.task("cleanup")]
    # The cancelled attempt's late result is ignored.
    await succeed(driver, "busy", "too late", T0 + 3)
    assert (await driver.get()).node("busy").status is NodeStatus.CANCELLED
    commands = await succeed(driver, "cleanup", "tidy", T0 + 4)
    assert finishes(commands) == [FinishRun(driver.run_id, RunStatus.FAILED)]


async def test_an_optional_node_may_fail_without_failing_the_run(backend: Backend) -> None:
    raw = workflow(
        node("nice_to_have", optional=True),
        node("on_failure", ["nice_to_have"], trigger_rule="one_failed"),
        node("strict", ["nice_to_have"]),
    )
    driver = await started(backend, raw)
    await driver.take_tasks(1)
    await fail(driver, "nice_to_have", T0 + 1)
    run = await driver.get()
    assert run.node("strict").status is NodeStatus.SKIPPED  # its dependents see it as failed
    assert await driver.take_tasks(1, exactly=True) == [driver.task("on_failure")]
    commands = await succeed(driver, "on_failure", "handled", T0 + 2)
    assert finishes(commands) == [FinishRun(driver.run_id, RunStatus.COMPLETED)]
    assert (await driver.get()).failed_nodes == 0


async def test_the_output_mapping_is_rendered_when_the_run_completes(backend: Backend) -> None:
    raw = workflow(node("a"), node("b", ["a"]))
    raw["output"] = {"total": "{{ b.total }}", "user": "{{ workflow.input.user }}", "text": "a={{ a.name }}"}
    driver = await started(backend, raw, {"user": "ada"})
    await driver.take_tasks(1)
    await succeed(driver, "a", {"name": "first"}, T0 + 1)
    await driver.take_tasks(1)
    commands = await succeed(driver, "b", {"total": 42}, T0 + 2)
    assert finishes(commands) == [FinishRun(driver.run_id, RunStatus.COMPLETED)]
    run = await driver.get()
    assert run.output == {"total": 42, "user": "ada", "text": "a=first"}


async def test_an_output_mapping_that_cannot_be_resolved_fails_the_run(backend: Backend) -> None:
    raw = workflow(node("a"))
    raw["output"] = {"total": "{{ a.nope }}"}
    driver = await started(backend, raw)
    await driver.take_tasks(1)
    commands = await succeed(driver, "a", {"total": 1}, T0 + 1)
    assert finishes(commands) == [FinishRun(driver.run_id, RunStatus.FAILED)]
    run = await driver.get()
    assert run.error is not None and run.error.type == OUTPUT_ERROR
    assert "{{ a.nope }}" in run.error.message and "output.total" in run.error.message


async def test_the_run_timeout_fails_the_run_and_cancels_its_unfinished_nodes(backend: Backend) -> None:
    raw = workflow(node("a"), node("b", ["a"]))
    raw["timeout_seconds"] = 30
    driver = await started(backend, raw)
    await driver.take_tasks(1)
    assert await backend.timers.next_due_at() == pytest.approx(T0 + 30)
    assert await backend.timers.fire_due(T0 + 31, 10) is None
    received = await drain(backend.events, 1, consumer="orchestrator")
    assert received[0].message == RunTimedOut(driver.run_id, T0 + 30)

    commands = await driver.apply_received(received)

    assert finishes(commands) == [FinishRun(driver.run_id, RunStatus.FAILED)]
    run = await driver.get()
    assert run.error is not None and run.error.type == RUN_TIMED_OUT
    assert [run.node(n).status for n in ("a", "b")] == [NodeStatus.CANCELLED] * 2


async def test_a_run_that_ends_in_time_ignores_its_timeout(backend: Backend) -> None:
    raw = workflow(node("a"))
    raw["timeout_seconds"] = 30
    driver = await started(backend, raw)
    await driver.take_tasks(1)
    await succeed(driver, "a", 1, T0 + 1)
    before = await driver.get()
    assert finishes(await driver.deliver(RunTimedOut(driver.run_id, T0 + 30))) == []
    assert (await driver.get()).status is before.status is RunStatus.COMPLETED


@pytest.mark.parametrize(
    ("policy", "error_type", "retried"),
    [
        ({"retry_on": ["IOError"]}, "IOError", True),
        ({"retry_on": ["IOError"]}, "ValueError", False),
        ({"no_retry_on": ["ValueError"]}, "ValueError", False),
        ({"no_retry_on": ["ValueError"]}, "IOError", True),
    ],
)
async def test_retry_on_and_no_retry_on_choose_what_is_retried(
    backend: Backend, policy: dict, error_type: str, retried: bool
) -> None:
    raw = workflow(node("flaky", retry_policy={"max_attempts": 3, "initial_backoff_seconds": 1, **policy}))
    driver = await started(backend, raw)
    await driver.take_tasks(1)
    await fail(driver, "flaky", T0 + 1, kind=error_type, retryable=True)
    flaky = (await driver.get()).node("flaky")
    if retried:
        assert (flaky.status, flaky.retry_at) == (NodeStatus.PENDING, pytest.approx(T0 + 2))
    else:
        assert flaky.status is NodeStatus.FAILED


async def test_jitter_draws_each_delay_between_zero_and_the_backoff(backend: Backend) -> None:
    policy = {"max_attempts": 2, "initial_backoff_seconds": 100, "jitter": True}
    raw = workflow(*(node(f"n{i}", retry_policy=policy) for i in range(8)))
    driver = await started(backend, raw)
    await driver.take_tasks(8)
    for i in range(8):
        await fail(driver, f"n{i}", T0 + 1, retryable=True)
    run = await driver.get()
    delays = [run.node(f"n{i}").retry_at - (T0 + 1) for i in range(8)]  # type: ignore[operator]
    assert all(0 <= delay <= 100 for delay in delays)
    assert len(set(delays)) == 8  # spread out, not all at the same moment


async def test_a_node_that_ended_without_output_reads_as_null_in_a_condition(backend: Backend) -> None:
    raw = workflow(
        gated("maybe"),
        node("fallback", ["maybe"], trigger_rule="all_done", when="{{ maybe }} == null"),
        node("follow_up", ["maybe"], trigger_rule="all_done", when="{{ maybe }} != null"),
    )
    driver = await started(backend, raw, {"maybe": False})
    assert await driver.take_tasks(1, exactly=True) == [driver.task("fallback")]
    follow_up = (await driver.get()).node("follow_up")
    assert follow_up.status is NodeStatus.SKIPPED
    assert follow_up.error is not None and follow_up.error.type == CONDITION_FALSE
    assert "{{ maybe }} = null" in follow_up.error.message
