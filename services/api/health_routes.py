"""A health check (the process answers) and a readiness check (its backend answers)."""

# No "from __future__ import annotations": FastAPI reads the routes' annotations as objects.
import asyncio
import logging
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from domain.errors import BackendError, BackendUnavailable
from services.api.dependencies import ReadinessProbe, services_of
from services.api.errors import error_responses

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 3.0

router = APIRouter()


class HealthStatus(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyStatus(BaseModel):
    status: Literal["ready"] = "ready"


@router.get("/health", tags=["health"], summary="The process answers (liveness)")
async def health() -> HealthStatus:
    return HealthStatus()


@router.get(
    "/ready",
    tags=["health"],
    summary="The backend answers (readiness)",
    responses=error_responses(503),
)
async def readiness(request: Request) -> ReadyStatus:
    """200 when the backend (Redis) answers within a few seconds; 503 ``backend_unavailable``
    otherwise."""
    ready = services_of(request).ready
    if ready is not None:
        await _check_backend(ready)
    return ReadyStatus()


async def _check_backend(ready: ReadinessProbe) -> None:
    """``BackendUnavailable`` unless ``ready`` returns within READY_TIMEOUT_SECONDS."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await ready()
    except TimeoutError:
        raise BackendUnavailable(f"the backend did not answer within {READY_TIMEOUT_SECONDS:g} s") from None
    except BackendUnavailable:
        raise
    except (BackendError, OSError) as error:
        log.warning("readiness check failed: %r", error)
        raise BackendUnavailable(f"the backend check failed: {type(error).__name__}") from None
