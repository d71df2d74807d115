"""The seed's four routes (exact shapes), a health check and a readiness check."""

# No "from __future__ import annotations": FastAPI must resolve the local ``Service`` dependency.
import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel

from domain.errors import BackendError, BackendUnavailable, InvalidInput
from services.api.bodies import check_json_content_type, parse_json, run_input_of, under_input
from services.api.errors import error_responses
from services.api.openapi import json_body
from services.api.seed_schemas import (
    HealthStatus,
    ReadyStatus,
    RunTriggered,
    WorkflowCreated,
    WorkflowResults,
    WorkflowStatus,
    results_of,
    status_of,
)
from services.application.errors import RunNotFinished
from services.application.run_view import run_view
from services.application.workflows import WorkflowService

log = logging.getLogger(__name__)

ReadinessProbe = Callable[[], Awaitable[None]]
ServiceDependency = Callable[[], Awaitable[WorkflowService]]
READY_TIMEOUT_SECONDS = 3.0


async def _json_only(request: Request) -> None:  # async: FastAPI runs a plain def in a thread
    check_json_content_type(request.headers)


JSON_BODY = [Depends(_json_only)]


def _json(model: BaseModel) -> Response:
    """The hottest routes serialize their own answer once; FastAPI would validate the model it
    was built as, turn it into plain data, then encode that."""
    return Response(model.model_dump_json(), media_type="application/json")


def build_router(workflows: ServiceDependency, ready: ReadinessProbe | None = None) -> APIRouter:
    """Routes relative to the API prefix; ``workflows`` gives the use cases for each request and
    ``ready`` checks the backend (raises ``BackendUnavailable``; None: always ready)."""
    router = APIRouter()
    Service = Annotated[WorkflowService, Depends(workflows)]

    @router.get("/health", tags=["health"], summary="The process answers (liveness)")
    async def health() -> HealthStatus:
        return HealthStatus()

    @router.get(
        "/ready",
        tags=["health"],
        summary="The backend answers (readiness)",
        responses=error_responses(503),
    )
    async def readiness() -> ReadyStatus:
        """200 when the backend (Redis) answers within a few seconds; 503 ``backend_unavailable``
        otherwise."""
        if ready is not None:
            try:
                async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                    await ready()
            except TimeoutError:
                raise BackendUnavailable(
                    f"the backend did not answer within {READY_TIMEOUT_SECONDS:g} s"
                ) from None
            except BackendUnavailable:
                raise
            except (BackendError, OSError) as error:
                log.warning("readiness check failed: %r", error)
                raise BackendUnavailable(f"the backend check failed: {type(error).__name__}") from None
        return ReadyStatus()

    @router.post(
        "/workflow",
        tags=["workflows"],
        summary="Register a workflow definition",
        responses=error_responses(400, 413, 415, 503),
        openapi_extra=json_body("WorkflowDefinition", required=True),
        dependencies=JSON_BODY,
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
        response_model=RunTriggered,
        responses=error_responses(400, 404, 413, 415, 422, 503),
        openapi_extra=json_body("TriggerRequest", required=False),
    )
    async def trigger_workflow(execution_id: str, request: Request) -> Response:
        """Body ``{"input": {...}}`` (optional). The run proceeds in the background; poll its status."""
        # The hottest routes call their dependencies themselves: FastAPI's injection costs more
        # than the work it would save here.
        check_json_content_type(request.headers)
        service = await workflows()
        run_input = run_input_of(await request.body())
        try:
            run = await service.start(execution_id, run_input)
        except InvalidInput as error:
            raise under_input(error) from None
        return _json(RunTriggered(instance_id=run.run_id))

    @router.get(
        "/workflows/{instance_id}",
        tags=["runs"],
        summary="Status of a run and of its nodes",
        response_model=WorkflowStatus,
        responses=error_responses(404, 422, 503),
    )
    async def workflow_status(instance_id: str) -> Response:
        service = await workflows()
        return _json(status_of(run_view(await service.get_run(instance_id, outputs=False))))

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
