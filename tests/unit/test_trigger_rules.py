"""``domain.trigger_rules.readiness``: each rule's decision for every way two parents can stand,
finished or not (the README's table is the finished rows; the unfinished ones are the early
decisions)."""

from __future__ import annotations

import itertools

import pytest

from domain.trigger_rules import ParentOutcome, Readiness, TriggerRule, readiness, skip_reason

RUN, SKIP, WAIT = Readiness.RUN, Readiness.SKIP, Readiness.WAIT
STATES = ("succeeded", "failed", "skipped", "unfinished")


def decide(rule: TriggerRule, *parents: str) -> Readiness:
    return readiness(
        rule,
        parents.count("succeeded"),
        parents.count("failed"),
        parents.count("skipped"),
        parents.count("unfinished"),
    )


def expected(rule: TriggerRule, parents: tuple[str, ...]) -> Readiness:
    """The rules as the README states them, written out independently of the module."""
    done = "unfinished" not in parents
    succeeded, failed, skipped = (parents.count(s) for s in ("succeeded", "failed", "skipped"))
    match rule:
        case TriggerRule.ALL_SUCCESS:
            return SKIP if failed or skipped else RUN if done else WAIT
        case TriggerRule.ALL_FAILED:
            return SKIP if succeeded or skipped else RUN if done else WAIT
        case TriggerRule.ALL_DONE | TriggerRule.ALWAYS:
            return RUN if done else WAIT
        case TriggerRule.ONE_SUCCESS:
            return RUN if succeeded else SKIP if done else WAIT
        case TriggerRule.ONE_FAILED:
            return RUN if failed else SKIP if done else WAIT
        case TriggerRule.NONE_FAILED:
            return SKIP if failed else RUN if done else WAIT
        case TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS:
            return SKIP if failed else WAIT if not done else RUN if succeeded else SKIP
    raise AssertionError(rule)


@pytest.mark.parametrize("rule", list(TriggerRule))
def test_every_rule_for_every_standing_of_three_parents(rule: TriggerRule) -> None:
    for parents in itertools.product(STATES, repeat=3):
        assert decide(rule, *parents) is expected(rule, parents), (rule, parents)


def test_one_success_fires_before_the_other_parents_end() -> None:
    assert decide(TriggerRule.ONE_SUCCESS, "succeeded", "unfinished", "unfinished") is RUN


def test_all_success_gives_up_before_the_other_parents_end() -> None:
    assert decide(TriggerRule.ALL_SUCCESS, "failed", "unfinished") is SKIP


@pytest.mark.parametrize(
    ("rule", "outcome", "message"),
    [
        (TriggerRule.ALL_SUCCESS, ParentOutcome.FAILED, "skipped because upstream node 'p' failed"),
        (TriggerRule.ALL_SUCCESS, ParentOutcome.SKIPPED, "skipped because upstream node 'p' was skipped"),
        (
            TriggerRule.NONE_FAILED,
            ParentOutcome.FAILED,
            "trigger rule none_failed cannot hold: upstream node 'p' failed",
        ),
        (
            TriggerRule.ONE_SUCCESS,
            ParentOutcome.FAILED,
            "trigger rule one_success cannot hold: no upstream node succeeded (the last, 'p', failed)",
        ),
        (
            TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
            ParentOutcome.SKIPPED,
            "trigger rule none_failed_min_one_success cannot hold: no upstream node succeeded "
            "(the last, 'p', was skipped)",
        ),
    ],
)
def test_a_skip_names_the_rule_and_the_deciding_parent(
    rule: TriggerRule, outcome: ParentOutcome, message: str
) -> None:
    assert skip_reason(rule, "p", outcome) == message
