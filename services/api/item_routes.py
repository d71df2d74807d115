"""A map node's items, page by page (``GET /runs/{id}/nodes/{node}/items``)."""

# No "from __future__ import annotations": FastAPI reads the routes' annotations as objects.
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from services.api.common_schemas import NodeErrorView, node_error_or_none, utc_time_or_none
from services.api.dependencies import Service
from services.api.errors import error_responses
from services.application.map_items import MAX_ITEMS_PER_PAGE, ItemsPage, ItemView
from services.application.run_view import ItemCounts

router = APIRouter()


class ItemCountsView(BaseModel):
    total: int
    waiting: int = Field(description="Never dispatched yet (held back by max_concurrency).")
    queued: int
    running: int
    retrying: int = Field(description="Waiting for a retry.")
    completed: int
    failed: int
    cancelled: int
    skipped: int = Field(0, description="Whose condition was false.")


class ItemDetail(BaseModel):
    index: int
    status: str = Field(description="A node status, or WAITING for an item never dispatched.")
    attempts: int = Field(description="The number of its latest attempt (0: never dispatched).")
    started_at: datetime | None
    finished_at: datetime | None
    worker_id: str | None
    error: NodeErrorView | None
    retry_at: datetime | None
    has_output: bool
    output: Any = Field(None, description="The item's output (a failed item's: its error).")


class ItemPageView(BaseModel):
    run_id: str
    node_id: str
    counts: ItemCountsView
    items: list[ItemDetail]
    next_offset: int | None = Field(description="Pass as `offset` for the next page; null at the end.")


def item_counts_view(counts: ItemCounts) -> ItemCountsView:
    return ItemCountsView.model_validate(counts, from_attributes=True)


def _item_detail(item: ItemView) -> ItemDetail:
    return ItemDetail(
        index=item.index,
        status=item.status,
        attempts=item.attempts,
        started_at=utc_time_or_none(item.started_at),
        finished_at=utc_time_or_none(item.finished_at),
        worker_id=item.worker_id,
        error=node_error_or_none(item.error),
        retry_at=utc_time_or_none(item.retry_at),
        has_output=item.has_output,
        output=item.output,
    )


def item_page_view(page: ItemsPage) -> ItemPageView:
    return ItemPageView(
        run_id=page.run_id,
        node_id=page.node_id,
        counts=item_counts_view(page.counts),
        items=[_item_detail(item) for item in page.items],
        next_offset=page.next_offset,
    )


@router.get(
    "/runs/{run_id}/nodes/{node_id}/items",
    tags=["runs"],
    summary="A map node's items, a page at a time",
    responses=error_responses(400, 404, 422, 503),
)
async def get_items(
    run_id: str,
    node_id: str,
    service: Service,
    offset: Annotated[int, Query(ge=0, description="The first item's index.")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_ITEMS_PER_PAGE, description="Items in the page.")] = 100,
) -> ItemPageView:
    """The items' status, attempts, times, worker, error and output, in index order. 400 for a node
    that is not a map (or has not read its list yet)."""
    return item_page_view(await service.items(run_id, node_id, offset, limit))
