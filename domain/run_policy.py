"""What a definition says about its run as a whole: the failure policy, the run's timeout, and the
run's output (a mapping of templates over nodes and input, rendered when the run completes)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from domain.definition import FailurePolicy, WorkflowDefinition
from domain.errors import Problem
from domain.rendering import CompiledConfig, compile_config
from domain.secret_refs import is_secret, output_problems
from domain.templates import ONLY_INPUT, WORKFLOW_NAMESPACE

if TYPE_CHECKING:
    from domain.plan import WorkflowPlan

OUTPUT_PATH = "$.output"


def compile_output(
    output: dict[str, Any] | None, node_index: Mapping[str, int]
) -> tuple[CompiledConfig | None, list[Problem]]:
    """Compile the ``output`` mapping; it may read any node (the run has ended when it is rendered)
    and the run's input."""
    if output is None:
        return None, []
    compiled, problems = compile_config(output, OUTPUT_PATH, label="output")
    problems.extend(output_problems(compiled))
    for ref in compiled.references:
        if is_secret(ref):
            continue  # just reported
        if ref.reads_run_data_outside_input:
            problems.append(Problem(OUTPUT_PATH, f"'{ref.text}': {ONLY_INPUT}"))
        elif ref.root != WORKFLOW_NAMESPACE and ref.root not in node_index:
            problems.append(Problem(OUTPUT_PATH, f"'{ref.text}' reads unknown node '{ref.root}'"))
    return compiled, problems


def with_run_policy(
    plan: WorkflowPlan, definition: WorkflowDefinition, output: CompiledConfig | None
) -> WorkflowPlan:
    """``plan`` with the workflow-level fields of ``definition``, and the roots its decisions read."""
    reads: set[str] = set() if output is None else set(output.roots)
    for spec in plan.nodes:
        if spec.condition is not None:
            reads.update(ref.root for ref in spec.condition.references)
    return dataclasses.replace(
        plan,
        fail_fast=definition.on_failure is FailurePolicy.FAIL_FAST,
        timeout_seconds=definition.timeout_seconds,
        output=output,
        decision_reads=frozenset(reads),
    )
