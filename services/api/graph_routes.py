"""What the web UI reads beside the resource API: a definition's DAG laid out (the positions of
``services.application.graph_layout``), one node of a run with its output, and the newest events of
a run (a page of a 20,000-node run shows its last events and follows from there, instead of replaying
80,000 of them).

Layouts are cached per definition id: a definition never changes once registered.
"""

# No "from __future__ import annotations": FastAPI reads the routes' annotations as objects.
import asyncio
from collections import OrderedDict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from domain.errors import NotFound
from domain.paging import MAX_PAGE_SIZE
from domain.plan import WorkflowPlan
from services.api.dependencies import Service
from services.api.errors import error_responses
from services.api.resource_schemas import NodeDetail, RunEventView, node_detail, run_event
from services.application.graph_layout import GraphLayout, layout_plan
from services.application.run_view import run_view
from services.application.workflows import WorkflowService

CACHED_LAYOUTS = 64
LAYOUT_IN_THREAD_NODES = 2_000
"""A larger DAG is laid out in a thread, so the API keeps answering meanwhile."""

router = APIRouter()


class GraphNodeView(BaseModel):
    id: str
    handler: str
    layer: int = Field(description="Column: the longest path from a root.")
    x: float
    y: float


class GraphView(BaseModel):
    definition_id: str
    name: str
    width: float
    height: float
    node_width: int
    node_height: int
    nodes: list[GraphNodeView] = Field(description="In definition order.")
    edges: list[tuple[int, int]] = Field(description="(parent, child) as indexes into `nodes`.")


class RunNodeDetail(NodeDetail):
    node_id: str
    handler: str
    queue: str = Field(description="The worker pool its tasks go to.")
    parents: list[str]
    has_output: bool
    output: Any = Field(None, description="The node's output when `has_output`.")


class EventsTail(BaseModel):
    last_seq: int = Field(description="Number of the run's newest event (0: none yet); resume after it.")
    events: list[RunEventView] = Field(description="The newest events, oldest first.")


class _Layouts:
    """The last ``CACHED_LAYOUTS`` layouts made, by definition id."""

    def __init__(self) -> None:
        self._cache: OrderedDict[str, GraphView] = OrderedDict()

    async def of(self, definition_id: str, plan: WorkflowPlan) -> GraphView:
        cached = self._cache.get(definition_id)
        if cached is not None:
            self._cache.move_to_end(definition_id)
            return cached
        if len(plan) > LAYOUT_IN_THREAD_NODES:
            layout = await asyncio.to_thread(layout_plan, plan)
        else:
            layout = layout_plan(plan)
        view = _graph_view(definition_id, plan.name, layout)
        self._cache[definition_id] = view
        while len(self._cache) > CACHED_LAYOUTS:
            self._cache.popitem(last=False)
        return view


def _graph_view(definition_id: str, name: str, layout: GraphLayout) -> GraphView:
    return GraphView(
        definition_id=definition_id,
        name=name,
        width=layout.width,
        height=layout.height,
        node_width=layout.node_width,
        node_height=layout.node_height,
        nodes=[
            GraphNodeView(id=node.id, handler=node.handler, layer=node.layer, x=node.x, y=node.y)
            for node in layout.nodes
        ],
        edges=list(layout.edges),
    )


def _layouts(request: Request) -> _Layouts:
    state = request.app.state
    if not hasattr(state, "graph_layouts"):
        state.graph_layouts = _Layouts()
    layouts: _Layouts = state.graph_layouts
    return layouts


@router.get(
    "/definitions/{definition_id}/graph",
    tags=["definitions"],
    summary="A definition's DAG laid out left to right (what the web UI draws)",
    responses=error_responses(404, 503),
)
async def get_graph(definition_id: str, request: Request, service: Service) -> GraphView:
    stored = await service.get_definition(definition_id)
    return await _layouts(request).of(definition_id, stored.plan)


@router.get(
    "/runs/{run_id}/nodes/{node_id}",
    tags=["runs"],
    summary="One node of a run, with its output",
    responses=error_responses(404, 503),
)
async def get_run_node(run_id: str, node_id: str, service: Service) -> RunNodeDetail:
    run = await service.get_run(run_id)
    if node_id not in run.plan.index:
        raise NotFound("node", f"{node_id}' of run '{run_id}")
    view = run_view(run, await service.queues_served(run)).nodes[node_id]
    spec = run.plan.node(node_id)
    return RunNodeDetail(
        **node_detail(view).model_dump(),
        node_id=node_id,
        handler=spec.handler,
        queue=spec.queue,
        parents=list(spec.parent_ids),
        has_output=view.has_output,
        output=view.output,
    )


async def _has_event(service: WorkflowService, run_id: str, number: int) -> bool:
    """Whether the run has an event numbered ``number`` (they are numbered 1, 2, 3 ... in order)."""
    return bool(await service.history(run_id, number - 1, 1))


async def _last_event_number(service: WorkflowService, run_id: str) -> int:
    """By doubling, then halving: about 2 log2(n) reads of one entry each."""
    if not await _has_event(service, run_id, 1):
        return 0
    present, absent = 1, 2
    while await _has_event(service, run_id, absent):
        present, absent = absent, absent * 2
    while absent - present > 1:
        middle = (present + absent) // 2
        if await _has_event(service, run_id, middle):
            present = middle
        else:
            absent = middle
    return present


@router.get(
    "/runs/{run_id}/events/tail",
    tags=["runs"],
    summary="A run's newest events and the number to follow its event stream from",
    responses=error_responses(404, 422, 503),
)
async def get_events_tail(
    run_id: str,
    service: Service,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="How many of the newest events.")] = 200,
) -> EventsTail:
    last = await _last_event_number(service, run_id)
    if last == 0:
        await service.get_run(run_id, outputs=False)  # 404 for an unknown run
    entries = await service.history(run_id, max(last - limit, 0), limit) if last else []
    return EventsTail(last_seq=last, events=[run_event(number, entry) for number, entry in entries])
