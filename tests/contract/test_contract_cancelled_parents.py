"""What a CANCELLED parent counts as, on every backend (README, "Trigger rules": the sentence after
the table).

A node ends CANCELLED only when the run ends at once (a cancel, its timeout: every unfinished node is
cancelled with it) or fails fast (every node not finished is cancelled, except ``always`` nodes not
started). So the only child that is still undecided when its parent is cancelled is an ``always``
node: it counts the cancelled parent as failed (its ``failed_parents``) and runs. A child under any
other rule is cancelled in the same step as its parent, before its rule is asked.
"""

from __future__ import annotations

import pytest
from contract_support import T0, Backend, Driver, add_run, finishes, node, nothing_waiting, workflow

from domain.events import CancelRequested, FinishRun, NodeFailed, NodeStarted, NodeSucceeded
from domain.reasons import FAIL_FAST
from domain.statuses import NodeStatus, RunStatus
from domain.trigger_rules import TriggerRule

OTHER_RULES = [rule.value for rule in TriggerRule if rule is not TriggerRule.ALWAYS]


async def started(backend: Backend, raw: dict, run_input: dict | None = None) -> Driver:
    driver = Driver(backend, await add_run(backend, raw, run_input))
    await driver.begin()
    return driver


def fail_fast(*nodes: dict) -> dict:
    raw = workflow(*nodes)
    raw["on_failure"] = "fail_fast"
    return raw


async def fail(driver: Driver, node_id: str, at: float) -> list:
    return await driver.deliver(
        NodeFailed(driver.run_id, node_id, 1, "RuntimeError", f"{node_id} broke", at, False)
    )


@pytest.mark.parametrize("rule", OTHER_RULES)
async def test_under_any_other_rule_the_child_of_a_cancelled_parent_is_cancelled_with_it(
    backend: Backend, rule: str
) -> None:
    """``of_busy``'s parent is in flight when the run fails fast, ``of_waiting``'s is pending."""
    raw = fail_fast(
        node("bad"),
        node("busy"),
        node("waiting", ["busy"]),
        node("of_busy", ["busy"], trigger_rule=rule),
        node("of_waiting", ["waiting"], trigger_rule=rule),
    )
    driver = await started(backend, raw)
    await driver.take_tasks(2)
    await driver.deliver(NodeStarted(driver.run_id, "busy", 1, "w", T0 + 1))

    commands = await fail(driver, "bad", T0 + 2)

    assert finishes(commands) == [FinishRun(driver.run_id, RunStatus.FAILED)]
    run = await driver.get()
    for parent, child_id in (("busy", "of_busy"), ("waiting", "of_waiting")):
        assert run.node(parent).status is NodeStatus.CANCELLED
        child = run.node(child_id)
        # Cancelled with its parent (not skipped, not run): its rule never saw the parent end.
        assert (child.status, child.attempt, child.failed_parents) == (NodeStatus.CANCELLED, 0, 0), child
        assert child.error is not None and child.error.type == FAIL_FAST and "'bad'" in child.error.message
    assert await nothing_waiting(backend.tasks, "worker")


# The second parent's end, and what the ``always`` child then counts: (failed, skipped) parents.
ALWAYS_ROWS = {
    "C-S": ("succeeded", 1, 0),
    "C-F": ("failed", 2, 0),
    "C-K": ("skipped", 1, 1),
    "C-C": ("cancelled", 2, 0),
}


@pytest.mark.parametrize(("other", "failed", "skipped"), list(ALWAYS_ROWS.values()), ids=list(ALWAYS_ROWS))
async def test_an_always_child_counts_a_cancelled_parent_as_failed_and_runs(
    backend: Backend, other: str, failed: int, skipped: int
) -> None:
    """Parents ``busy`` (in flight, cancelled by the fail-fast) and ``other`` (ending as given;
    ``failed``: it is the node that fails fast)."""
    second = node("second", when="{{ workflow.input.go }}")
    raw = fail_fast(
        node("bad"),
        node("busy"),
        second,
        node("cleanup", ["busy", "second"], trigger_rule="always"),
    )
    driver = await started(backend, raw, {"go": other != "skipped"})
    await driver.take_tasks(2 if other == "skipped" else 3)
    await driver.deliver(NodeStarted(driver.run_id, "busy", 1, "w", T0 + 1))
    if other == "succeeded":
        await driver.deliver(NodeSucceeded(driver.run_id, "second", 1, {"ok": True}, T0 + 2))
    elif other == "cancelled":
        await driver.deliver(NodeStarted(driver.run_id, "second", 1, "w", T0 + 2))

    await fail(driver, "second" if other == "failed" else "bad", T0 + 3)

    run = await driver.get()
    assert run.status is RunStatus.RUNNING  # the clean-up step still has to run
    assert run.node("busy").status is NodeStatus.CANCELLED
    cleanup = run.node("cleanup")
    assert (cleanup.status, cleanup.failed_parents, cleanup.skipped_parents) == (
        NodeStatus.QUEUED,
        failed,
        skipped,
    ), cleanup
    assert await driver.take_tasks(1, exactly=True) == [driver.task("cleanup")]
    commands = await driver.deliver(NodeSucceeded(driver.run_id, "cleanup", 1, "tidy", T0 + 4))
    assert finishes(commands) == [FinishRun(driver.run_id, RunStatus.FAILED)]


async def test_an_always_child_reads_a_cancelled_parent_as_null_in_its_condition(backend: Backend) -> None:
    raw = fail_fast(
        node("bad"),
        node("busy"),
        node("if_lost", ["busy"], trigger_rule="always", when="{{ busy }} == null"),
        node("if_kept", ["busy"], trigger_rule="always", when="{{ busy }} != null"),
    )
    driver = await started(backend, raw)
    await driver.take_tasks(2)

    await fail(driver, "bad", T0 + 1)

    assert await driver.take_tasks(1, exactly=True) == [driver.task("if_lost")]
    assert (await driver.get()).node("if_kept").status is NodeStatus.SKIPPED


@pytest.mark.parametrize("rule", [rule.value for rule in TriggerRule])
async def test_a_cancel_ends_every_undecided_child_cancelled_whatever_its_rule(
    backend: Backend, rule: str
) -> None:
    raw = workflow(node("busy"), node("child", ["busy"], trigger_rule=rule))
    driver = await started(backend, raw)
    await driver.take_tasks(1)

    commands = await driver.deliver(CancelRequested(driver.run_id, T0 + 1, "ada"))

    assert finishes(commands) == [FinishRun(driver.run_id, RunStatus.CANCELLED)]
    run = await driver.get()
    assert run.cancelled_by == "ada"
    child = run.node("child")
    assert (child.status, child.attempt, child.failed_parents, child.error) == (
        NodeStatus.CANCELLED,
        0,
        0,
        None,
    )
    assert await nothing_waiting(backend.tasks, "worker")
