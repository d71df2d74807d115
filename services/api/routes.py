"""The seed's four routes (exact shapes) and a health check."""

# No "from __future__ import annotations": FastAPI must resolve the local ``Service`` dependency.
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from domain.errors import InvalidInput
from services.api.bodies import parse_json, run_input_of, under_input
from services.api.errors import error_responses
from services.api.schemas import (
    HealthStatus,
    RunTriggered,
    WorkflowCreated,
    WorkflowResults,
    WorkflowStatus,
    json_body,
    results_of,
    status_of,
)
from services.shared.errors import RunNotFinished
from services.shared.workflows import WorkflowService


def build_router(workflows: Callable[[], WorkflowService]) -> APIRouter:
    """Routes relative to the API prefix; ``workflows`` gives the use cases for each request."""
    router = APIRouter()
    Service = Annotated[WorkflowService, Depends(workflows)]

    @router.get("/health", tags=["health"])
    async def health() -> HealthStatus:
        return HealthStatus()

    @router.post(
        "/workflow",
        tags=["workflows"],
        summary="Register a workflow definition",
        responses=error_responses(400, 503),
        openapi_extra=json_body("WorkflowDefinition", required=True),
    )
    async def submit_workflow(request: Request, service: Service) -> WorkflowCreated:
        """Validate and store a definition; a 400 lists every problem with its JSON path."""
        definition = parse_json(await request.body(), "a workflow definition")
        stored = await service.register(definition)
        return WorkflowCreated(execution_id=stored.definition_id)

    @router.post(
        "/workflow/trigger/{execution_id}",
        tags=["workflows"],
        summary="Start a run of a registered workflow",
        responses=error_responses(400, 404, 422, 503),
        openapi_extra=json_body("TriggerRequest", required=False),
    )
    async def trigger_workflow(execution_id: str, request: Request, service: Service) -> RunTriggered:
        """Body ``{"input": {...}}`` (optional). The run proceeds in the background; poll its status."""
        run_input = run_input_of(await request.body())
        try:
            run = await service.start(execution_id, run_input)
        except InvalidInput as error:
            raise under_input(error) from None
        return RunTriggered(instance_id=run.run_id)

    @router.get(
        "/workflows/{instance_id}",
        tags=["runs"],
        summary="Status of a run and of its nodes",
        responses=error_responses(404, 422, 503),
    )
    async def workflow_status(instance_id: str, service: Service) -> WorkflowStatus:
        return status_of(await service.get_run(instance_id))

    @router.get(
        "/workflows/{instance_id}/results",
        tags=["runs"],
        summary="Outputs of a finished run",
        responses=error_responses(400, 404, 422, 503),
    )
    async def workflow_results(instance_id: str, service: Service) -> WorkflowResults:
        """Once the run is COMPLETED, FAILED or CANCELLED: the output of every node that completed.
        While it runs: 400."""
        run = await service.get_run(instance_id)
        if not run.status.is_final:
            raise RunNotFinished(run.run_id, run.status)
        return results_of(run)

    return router
