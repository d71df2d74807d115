"""Small builders shared by the domain unit tests (definitions, plans, runs, snapshots)."""

from __future__ import annotations

from typing import Any

from definitions import node, workflow  # noqa: F401  (re-exported for the unit tests)
from run_snapshots import snapshot  # noqa: F401  (re-exported for the unit tests)

from domain.errors import InvalidDefinition, Problem
from domain.events import Command, Event
from domain.plan import WorkflowPlan
from domain.run import Run
from domain.validation import build_plan

RUN_ID = "run-1"


def plan_of(*nodes: dict[str, Any]) -> WorkflowPlan:
    return build_plan(workflow(*nodes))


def problems_of(raw: Any, **kwargs: Any) -> list[Problem]:
    """The problems ``build_plan`` reports; fails the test when the definition is accepted."""
    try:
        build_plan(raw, **kwargs)
    except InvalidDefinition as error:
        assert error.problems, "InvalidDefinition must carry at least one problem"
        return error.problems
    raise AssertionError("definition was accepted, expected InvalidDefinition")


def handle(run: Run, event: Event) -> list[Command]:
    """The commands ``event`` calls for ([] when it was ignored, or applied with none)."""
    outcome = run.apply(event)
    return [] if outcome is None else list(outcome.commands)


def new_run(plan: WorkflowPlan, run_input: dict[str, Any] | None = None) -> Run:
    return Run.create(RUN_ID, "def-1", plan, run_input or {}, at=0.0)
