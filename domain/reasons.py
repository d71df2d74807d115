"""Why a node or a run ended as it did: the error types the engine itself records (beside a
handler's own exception types), and the messages that say it. The run aggregate decides; this module
only words the decision."""

from __future__ import annotations

from domain.node_state import ErrorInfo, NodeRun
from domain.plan import NodeSpec
from domain.trigger_rules import ParentOutcome, TriggerRule, skip_reason

UPSTREAM_FAILED = "UpstreamFailed"
UPSTREAM_SKIPPED = "UpstreamSkipped"
TRIGGER_RULE_UNMET = "TriggerRuleUnmet"
CONDITION_FALSE = "ConditionFalse"
CONDITION_ERROR = "ConditionError"
FAIL_FAST = "FailFast"
RUN_TIMED_OUT = "RunTimedOut"
OUTPUT_ERROR = "OutputError"
DEAD_LETTERED = "DeadLettered"
OUTPUT_LOST_ERROR = "OutputLost"
TIMEOUT_ERROR = "TimeoutError"


def output_lost_message(attempt: int) -> str:
    """Why an attempt whose output was staged apart from its success failed: the output is gone."""
    return f"the output of attempt {attempt} was lost before it was recorded"


def timeout_message(attempt: int, timeout_seconds: float | None) -> str:
    """The error message of an attempt that ran past its node's timeout (worker or deadline)."""
    limit = "its timeout" if timeout_seconds is None else f"the timeout of {timeout_seconds}s"
    return f"attempt {attempt} exceeded {limit}"


def skip_error(child: NodeSpec, parent_id: str, parent: NodeRun, outcome: ParentOutcome) -> ErrorInfo:
    """Why ``child`` is skipped. Under the default rule a chain of skips keeps naming the node whose
    failure began it (as it always has)."""
    if child.trigger_rule is not TriggerRule.ALL_SUCCESS:
        return ErrorInfo(TRIGGER_RULE_UNMET, skip_reason(child.trigger_rule, parent_id, outcome))
    if outcome is ParentOutcome.FAILED:
        return ErrorInfo(UPSTREAM_FAILED, skip_reason(child.trigger_rule, parent_id, outcome))
    if parent.error is not None and parent.error.type == UPSTREAM_FAILED:
        return parent.error
    return ErrorInfo(UPSTREAM_SKIPPED, skip_reason(child.trigger_rule, parent_id, outcome))


def fail_fast_error(failed_id: str) -> ErrorInfo:
    return ErrorInfo(FAIL_FAST, f"cancelled because node '{failed_id}' failed and the workflow fails fast")


def run_timed_out_error(timeout_seconds: float | None) -> ErrorInfo:
    return ErrorInfo(RUN_TIMED_OUT, f"the run did not finish within {timeout_seconds}s")
