"""Trigger rules: when a node with parents runs, given how its parents ended (README, "Trigger rules").

A node keeps counters of its parents by outcome (``NodeRun``), so each parent's end costs O(1) here;
the rule is looked at every time one of its parents ends, and decides as soon as the outcome is known:
a rule that holds early (``one_success``, ``one_failed``) fires at once, a rule that can no longer
hold skips the node at once. A parent that was cancelled counts as failed. A node without parents
starts with the run whatever its rule.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum


class TriggerRule(StrEnum):
    ALL_SUCCESS = "all_success"
    ALL_DONE = "all_done"
    ALL_FAILED = "all_failed"
    ONE_SUCCESS = "one_success"
    ONE_FAILED = "one_failed"
    NONE_FAILED = "none_failed"
    NONE_FAILED_MIN_ONE_SUCCESS = "none_failed_min_one_success"
    ALWAYS = "always"
    """As ``all_done``, and the node is not cancelled when the workflow fails fast: a clean-up step."""


class Readiness(StrEnum):
    WAIT = "wait"
    RUN = "run"
    SKIP = "skip"


class ParentOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "was skipped"


type Decide = Callable[[int, int, int, int], Readiness]
"""(succeeded, failed, skipped, unfinished) parents -> what the node does now."""


def readiness(rule: TriggerRule, succeeded: int, failed: int, skipped: int, unfinished: int) -> Readiness:
    """What a node with ``rule`` does now, its parents standing at these counts."""
    return _RULES[rule](succeeded, failed, skipped, unfinished)


def _all_success(succeeded: int, failed: int, skipped: int, unfinished: int) -> Readiness:
    if failed or skipped:
        return Readiness.SKIP
    return Readiness.RUN if unfinished == 0 else Readiness.WAIT


def _all_failed(succeeded: int, failed: int, skipped: int, unfinished: int) -> Readiness:
    if succeeded or skipped:
        return Readiness.SKIP
    return Readiness.RUN if unfinished == 0 else Readiness.WAIT


def _all_done(succeeded: int, failed: int, skipped: int, unfinished: int) -> Readiness:
    return Readiness.RUN if unfinished == 0 else Readiness.WAIT


def _one_success(succeeded: int, failed: int, skipped: int, unfinished: int) -> Readiness:
    if succeeded:
        return Readiness.RUN
    return Readiness.SKIP if unfinished == 0 else Readiness.WAIT


def _one_failed(succeeded: int, failed: int, skipped: int, unfinished: int) -> Readiness:
    if failed:
        return Readiness.RUN
    return Readiness.SKIP if unfinished == 0 else Readiness.WAIT


def _none_failed(succeeded: int, failed: int, skipped: int, unfinished: int) -> Readiness:
    if failed:
        return Readiness.SKIP
    return Readiness.RUN if unfinished == 0 else Readiness.WAIT


def _none_failed_min_one_success(succeeded: int, failed: int, skipped: int, unfinished: int) -> Readiness:
    if failed:
        return Readiness.SKIP
    if unfinished:
        return Readiness.WAIT
    return Readiness.RUN if succeeded else Readiness.SKIP


_RULES: dict[TriggerRule, Decide] = {
    TriggerRule.ALL_SUCCESS: _all_success,
    TriggerRule.ALL_FAILED: _all_failed,
    TriggerRule.ALL_DONE: _all_done,
    TriggerRule.ALWAYS: _all_done,
    TriggerRule.ONE_SUCCESS: _one_success,
    TriggerRule.ONE_FAILED: _one_failed,
    TriggerRule.NONE_FAILED: _none_failed,
    TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS: _none_failed_min_one_success,
}

_NONE_DID = {
    TriggerRule.ONE_SUCCESS: "no upstream node succeeded",
    TriggerRule.ONE_FAILED: "no upstream node failed",
    TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS: "no upstream node succeeded",
}


def skip_reason(rule: TriggerRule, parent_id: str, outcome: ParentOutcome) -> str:
    """Why a node is skipped: the rule, and the parent whose end decided it (and how it ended)."""
    if rule is TriggerRule.ALL_SUCCESS:
        return f"skipped because upstream node '{parent_id}' {outcome.value}"
    none_did = _NONE_DID.get(rule)
    broken_by_parent = none_did is None or (
        rule is TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS and outcome is ParentOutcome.FAILED
    )
    if broken_by_parent:
        return f"trigger rule {rule.value} cannot hold: upstream node '{parent_id}' {outcome.value}"
    return f"trigger rule {rule.value} cannot hold: {none_did} (the last, '{parent_id}', {outcome.value})"
