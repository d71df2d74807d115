"""Per-attempt logs: what a node's handler logged during one attempt
(``GET /runs/{id}/nodes/{node}/logs``)."""

# No "from __future__ import annotations": FastAPI reads the routes' annotations as objects.
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from services.api.dependencies import Service
from services.api.errors import error_responses

router = APIRouter()


class AttemptLogView(BaseModel):
    run_id: str
    node_id: str
    attempt: int = Field(description="The attempt these lines belong to; 0 when the node has not started.")
    lines: list[str] = Field(
        description="What the handler logged (INFO and above, `ctx.log` or standard `logging`), oldest "
        "first, each `time LEVEL logger: message`; a failed attempt ends with its traceback. At most "
        "1,000 lines per attempt, kept as long as the run."
    )


@router.get(
    "/runs/{run_id}/nodes/{node_id}/logs",
    tags=["runs"],
    summary="What a node's handler logged during one attempt",
    responses=error_responses(400, 404, 422, 503),
)
async def get_attempt_log(
    run_id: str,
    node_id: str,
    service: Service,
    attempt: Annotated[int | None, Query(ge=1, description="The attempt (default: the latest).")] = None,
) -> AttemptLogView:
    log = await service.attempt_log(run_id, node_id, attempt)
    return AttemptLogView(run_id=log.run_id, node_id=log.node_id, attempt=log.attempt, lines=log.lines)
