"""The data a run's own decisions read (node outputs, with the run's input under ``workflow``), and
the two decisions that read it: a node's condition, and the run's output mapping."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from domain.conditions import Condition
from domain.errors import ConditionError, TemplateError
from domain.node_state import ErrorInfo
from domain.reasons import CONDITION_ERROR, CONDITION_FALSE
from domain.templates import WORKFLOW_NAMESPACE, Reference

if TYPE_CHECKING:
    from domain.plan import WorkflowPlan


def render_output(plan: WorkflowPlan, outputs: Mapping[str, Any], run_input: Mapping[str, Any]) -> Any:
    """The run's output; raises ``TemplateError`` naming what could not be resolved."""
    assert plan.output is not None
    return plan.output.render(run_data(outputs, run_input))


class _RunData(Mapping[str, Any]):
    """Node outputs with the workflow namespace beside them, without copying the outputs."""

    def __init__(self, outputs: Mapping[str, Any], run_input: Mapping[str, Any]) -> None:
        self._outputs = outputs
        self._workflow = {"input": run_input}

    def __getitem__(self, key: str) -> Any:
        if key == WORKFLOW_NAMESPACE:
            return self._workflow
        return self._outputs[key]

    def __contains__(self, key: object) -> bool:
        return key == WORKFLOW_NAMESPACE or key in self._outputs

    def __iter__(self) -> Iterator[str]:
        yield WORKFLOW_NAMESPACE
        yield from self._outputs

    def __len__(self) -> int:
        return len(self._outputs) + 1


def run_data(outputs: Mapping[str, Any], run_input: Mapping[str, Any]) -> Mapping[str, Any]:
    """What templates of the run's own decisions resolve against: outputs and ``workflow.input``."""
    return _RunData(outputs, run_input)


def condition_verdict(
    condition: Condition, outputs: Mapping[str, Any], run_input: Mapping[str, Any]
) -> ErrorInfo | None:
    """None when ``condition`` holds; else why not: ``ConditionFalse`` (with the values it saw) or
    ``ConditionError`` (it cannot be evaluated: a missing path, a comparison of unlike types)."""
    data = run_data(outputs, run_input)
    try:
        result = condition.evaluate(lambda ref: _resolve_in_condition(ref, data))
    except (ConditionError, TemplateError) as error:
        return ErrorInfo(CONDITION_ERROR, f"condition '{condition.text}' cannot be evaluated: {error}")
    return None if result.value else ErrorInfo(CONDITION_FALSE, result.describe())


def _resolve_in_condition(ref: Reference, data: Mapping[str, Any]) -> Any:
    """A node that ended without an output (skipped, failed, or not finished under an early rule)
    reads as null in a condition, so ``{{ a }} == null`` can test for it; a path that is missing
    inside an output is an error, as in templates (a typo fails loudly)."""
    if ref.root not in data:
        return None
    return ref.resolve_in(data)
