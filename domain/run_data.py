"""The data a run's own decisions read: node outputs with the run's input under ``workflow``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from domain.templates import WORKFLOW_NAMESPACE

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
