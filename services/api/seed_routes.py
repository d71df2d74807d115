"""The seed's four routes, with the exact shapes the seed answered."""

# No "from __future__ import annotations": FastAPI reads the routes' annotations as objects.
from fastapi import APIRouter, Request, Response

from domain.errors import InvalidInput
from services.api.bodies import (
    check_json_content_type,
    idempotency_of,
    parse_json,
    trigger_body_of,
    under_input,
)
from services.api.common_schemas import IfChanged, WaitSeconds, warning_details
from services.api.dependencies import JSON_BODY, Service, json_response, token_name, workflow_service
from services.api.disconnects import unless_client_leaves
from services.api.errors import error_responses
from services.api.openapi import json_body
from services.api.run_answers import NOT_MODIFIED, Shape, run_answer
from services.api.seed_schemas import (
    RunTriggered,
    WorkflowCreated,
    WorkflowResults,
    WorkflowStatus,
    encode_status,
    results_of,
)
from services.application.errors import RunNotFinished

router = APIRouter()

SEED_STATUS = Shape("seed status", encode_status)


@router.post(
    "/workflow",
    tags=["workflows"],
    summary="Register a workflow definition",
    response_model_exclude_none=True,
    responses=error_responses(400, 409, 413, 415, 503),
    openapi_extra=json_body("WorkflowDefinition", required=True),
    dependencies=JSON_BODY,
)
async def submit_workflow(
    request: Request, service: Service, if_changed: IfChanged = False
) -> WorkflowCreated:
    """Validate and store a definition; a 400 lists every problem with its JSON path."""
    definition = parse_json(await request.body(), "a workflow definition")
    once = idempotency_of(request.headers, None, "definitions", definition, if_changed)
    stored, _ = await service.register_once(definition, once, if_changed=if_changed)
    warnings = await service.registration_warnings(stored.plan)
    if not warnings:
        return WorkflowCreated(execution_id=stored.definition_id)
    return WorkflowCreated(execution_id=stored.definition_id, warnings=warning_details(warnings))


@router.post(
    "/workflow/trigger/{execution_id}",
    tags=["workflows"],
    summary="Start a run of a registered workflow",
    response_model=RunTriggered,
    responses=error_responses(400, 404, 409, 413, 415, 422, 503),
    openapi_extra=json_body("TriggerRequest", required=False),
)
async def trigger_workflow(execution_id: str, request: Request) -> Response:
    """Body ``{"input": {...}}`` (optional). The run proceeds in the background; poll its status."""
    # A hot route: it checks the body and gets its use cases itself (see ``workflow_service``).
    check_json_content_type(request.headers)
    service = await workflow_service(request)
    run_input, request_id = trigger_body_of(await request.body())
    once = idempotency_of(request.headers, request_id, "trigger", execution_id, run_input)
    try:
        run, _ = await service.start_once(execution_id, run_input, once, token_name(request))
    except InvalidInput as error:
        raise under_input(error) from None
    return json_response(RunTriggered(instance_id=run.run_id))


@router.get(
    "/workflows/{instance_id}",
    tags=["runs"],
    summary="Status of a run and of its nodes",
    response_model=WorkflowStatus,
    responses={**NOT_MODIFIED, **error_responses(404, 422, 503)},
)
async def workflow_status(instance_id: str, request: Request, wait: WaitSeconds = 0) -> Response:
    """With `?wait=SECONDS`: the answer comes as soon as the run has ended (or when the time is
    up), in the same shape. The answer has an `ETag`; with `If-None-Match` naming it, 304 (no body)
    while the run is as it was."""
    service = await workflow_service(request)  # a hot route, as above
    if wait:
        waited = await unless_client_leaves(request.receive, service.wait_for_run(instance_id, wait))
        if waited is None:
            return Response(status_code=204)
    return await run_answer(request, service, instance_id, SEED_STATUS)


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
    return results_of(run, await service.results(run))
