"""The resource API beside the seed's routes: definitions (with versions), runs, cancel, run events.

A run's events stream as Server-Sent Events: the history so far, then live entries until the one
that ends the run. A client that reconnects sends ``Last-Event-ID`` (or ``?after=``) and resumes.
"""

# No "from __future__ import annotations": FastAPI reads the routes' annotations as objects.
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from domain.errors import InvalidInput, Problem
from domain.paging import MAX_PAGE_SIZE
from domain.ports import RunQuery, RunSummary
from domain.statuses import RunStatus
from services.api.bodies import (
    check_json_content_type,
    idempotency_of,
    parse_json,
    redrive_from_of,
    start_request_of,
    under_input,
)
from services.api.common_schemas import IfChanged, WaitSeconds, warning_details
from services.api.dependencies import JSON_BODY, Service, json_response, token_name, workflow_service
from services.api.disconnects import unless_client_leaves
from services.api.errors import error_responses
from services.api.event_stream import HEADERS, ITEM_SCHEMA, event_stream
from services.api.openapi import json_body
from services.api.resource_schemas import (
    CancelAccepted,
    DefinitionDetail,
    DefinitionPage,
    DefinitionRegistered,
    HandlersView,
    RedriveAccepted,
    RunDetail,
    RunPage,
    RunResultsView,
    RunSummaryView,
    ServedHandlerView,
    definition_detail,
    definition_page,
    definition_view,
    run_detail,
    run_page,
    run_results,
    run_summary_view,
)
from services.api.run_answers import NOT_MODIFIED, Shape, run_answer
from services.application.errors import RunNotFinishedYet

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page.")]
Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]

router = APIRouter()

RUN_DETAIL = Shape("run detail", lambda view: run_detail(view).model_dump_json().encode())


@router.post(
    "/definitions",
    tags=["definitions"],
    status_code=201,
    summary="Register a definition (a new version of its name)",
    responses=error_responses(400, 409, 413, 415, 503),
    openapi_extra=json_body("WorkflowDefinition", required=True),
    dependencies=JSON_BODY,
)
async def create_definition(
    request: Request, response: Response, service: Service, if_changed: IfChanged = False
) -> DefinitionRegistered:
    """Registering a name again makes its next version; runs pin the version they start with.
    With an `Idempotency-Key` header, a registration repeated with the same key and body answers
    200 with the version the first one registered; the same key with another body is a 409."""
    definition = parse_json(await request.body(), "a workflow definition")
    once = idempotency_of(request.headers, None, "definitions", definition, if_changed)
    stored, repeated = await service.register_once(definition, once, if_changed=if_changed)
    if repeated:
        response.status_code = 200  # the answer the first request got, with its version
    warnings = warning_details(await service.registration_warnings(stored.plan))
    return DefinitionRegistered(**definition_view(stored.summary()).model_dump(), warnings=warnings)


@router.get(
    "/handlers",
    tags=["workers"],
    summary="What the live workers serve",
    responses=error_responses(503),
)
async def list_handlers(service: Service) -> HandlersView:
    """Every (queue, handler) that a live worker announced, with how many workers serve it. A
    queue none of whose workers has a handler is absent; a worker that stopped or died drops out
    within a visibility timeout."""
    served = await service.served_handlers()
    return HandlersView(
        items=[ServedHandlerView(queue=s.queue, handler=s.handler, workers=s.workers) for s in served]
    )


@router.get(
    "/definitions",
    tags=["definitions"],
    summary="List definitions, newest first",
    responses=error_responses(400, 422, 503),
)
async def list_definitions(
    service: Service,
    name: Annotated[str | None, Query(description="Only versions of this workflow name.")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> DefinitionPage:
    return definition_page(await service.definitions(name, cursor, limit))


@router.get(
    "/definitions/{definition_id}",
    tags=["definitions"],
    summary="A definition as registered",
    responses=error_responses(404, 503),
)
async def get_definition(definition_id: str, service: Service) -> DefinitionDetail:
    return definition_detail(await service.get_definition(definition_id))


@router.post(
    "/runs",
    tags=["runs"],
    status_code=201,
    summary="Start a run",
    description="With an `Idempotency-Key` header, a start repeated with the same key and body "
    "answers 200 with the run the first one started (within the run's retention, across API "
    "replicas); the same key with another body is a 409.",
    response_model=RunSummaryView,
    responses=error_responses(400, 404, 409, 413, 415, 503),
    openapi_extra=json_body("StartRunRequest", required=True),
)
async def start_run(request: Request) -> Response:
    """Body ``{"definition_id": ..., "input": {...}}`` (that version), or ``{"workflow": name,
    "input": {...}}`` (its newest version)."""
    # A hot route (``hot_routes``): it checks the body and gets its use cases itself.
    check_json_content_type(request.headers)
    service = await workflow_service(request)
    definition_id, workflow, run_input = start_request_of(await request.body())
    once = idempotency_of(request.headers, None, "runs", definition_id, workflow, run_input)
    if definition_id is None:
        assert workflow is not None
        definition_id = await service.latest_definition(workflow)
    try:
        run, repeated = await service.start_once(definition_id, run_input, once, token_name(request))
    except InvalidInput as error:
        raise under_input(error) from None
    view = run_summary_view(RunSummary.of(run))
    # 200 for a repeated start: the answer the first request got, with its run.
    location = {"location": f"{request.url.path}/{run.run_id}"}
    return json_response(view, 200 if repeated else 201, location)


@router.get(
    "/runs",
    tags=["runs"],
    summary="List runs, newest first",
    responses=error_responses(400, 422, 503),
)
async def list_runs(
    service: Service,
    workflow: Annotated[str | None, Query(description="Only runs of this workflow name.")] = None,
    status: Annotated[RunStatus | None, Query(description="Only runs in this status.")] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> RunPage:
    query = RunQuery(workflow=workflow, status=status, cursor=cursor, limit=limit)
    return run_page(await service.runs(query))


@router.get(
    "/runs/{run_id}",
    tags=["runs"],
    summary="A run and its nodes",
    response_model=RunDetail,
    responses={**NOT_MODIFIED, **error_responses(404, 422, 503)},
)
async def get_run(run_id: str, request: Request, service: Service, wait: WaitSeconds = 0) -> Response:
    """With `?wait=SECONDS`: the answer comes as soon as the run has ended (or when the time is up).
    The answer has an `ETag`; with `If-None-Match` naming it, 304 (no body) while the run is as it
    was."""
    if wait:
        waited = await unless_client_leaves(request.receive, service.wait_for_run(run_id, wait))
        if waited is None:
            return Response(status_code=204)
    return await run_answer(request, service, run_id, RUN_DETAIL)


@router.get(
    "/runs/{run_id}/results",
    tags=["runs"],
    summary="Outputs of a finished run",
    responses=error_responses(404, 409, 503),
)
async def get_results(run_id: str, service: Service) -> RunResultsView:
    """Once the run is COMPLETED, FAILED or CANCELLED: every completed node's output. 409 before."""
    run = await service.get_run(run_id)
    if not run.status.is_final:
        raise RunNotFinishedYet(run.run_id, run.status)
    return run_results(run, await service.results(run))


@router.post(
    "/runs/{run_id}/cancel",
    tags=["runs"],
    status_code=202,
    summary="Cancel a run",
    responses=error_responses(404, 409, 503),
)
async def cancel_run(run_id: str, request: Request, service: Service) -> CancelAccepted:
    """Nodes not yet started never start and the run ends CANCELLED (attempts already running
    finish, their results ignored). 409 when the run has already ended."""
    return CancelAccepted(run_id=run_id, status=await service.cancel(run_id, token_name(request)))


@router.post(
    "/runs/{run_id}/redrive",
    tags=["runs"],
    status_code=202,
    summary="Run a failed or cancelled run again",
    responses=error_responses(400, 404, 409, 422, 503),
    openapi_extra=json_body("RedriveRequest", required=False),
)
async def redrive_run(run_id: str, request: Request, service: Service) -> RedriveAccepted:
    """A FAILED or CANCELLED run (a timed-out run is FAILED) runs again: its failed, cancelled and
    skipped nodes, and with `{"from": ["node"]}` those nodes and their descendants even when they
    completed; every other node keeps its output. The run is RUNNING again, its timeout counting
    from now; attempt numbers go on, and each node gets its whole retry policy again. 409 for a
    COMPLETED, RUNNING or PENDING run; 422 naming an unknown node of `from`."""
    redriven = await service.redrive(run_id, redrive_from_of(await request.body()))
    run = await service.get_run(run_id, outputs=False)
    return RedriveAccepted(run_id=run_id, status=run.status, redriven=redriven)


async def first_event_after(
    run_id: str,
    service: Service,
    after: Annotated[int, Query(ge=0, description="Resume after this event number.")] = 0,
    last_event_id: Annotated[str | None, Header(description="Resume after this event (SSE).")] = None,
) -> int:
    """Where the stream starts; checks the run exists before the stream begins (404)."""
    if last_event_id is not None:
        try:
            after = max(after, int(last_event_id))
        except ValueError:
            raise InvalidInput([Problem("header.last-event-id", "must be an event number")]) from None
    await service.history(run_id, 0, 1)
    return after


@router.get(
    "/runs/{run_id}/events",
    tags=["runs"],
    summary="A run's events as Server-Sent Events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The run's events (`text/event-stream`).",
            "content": {"text/event-stream": {"itemSchema": ITEM_SCHEMA}},
        },
        **error_responses(400, 404, 422, 503),
    },
)
async def run_events(
    run_id: str, service: Service, after: Annotated[int, Depends(first_event_after)]
) -> StreamingResponse:
    """Every event of the run in order (`id` = its number, `event` = its kind, `data` = a
    RunEventView), live until the event that ends the run (it has `run_status`), then the
    stream closes."""
    return StreamingResponse(
        event_stream(service, run_id, after), media_type="text/event-stream", headers=HEADERS
    )
