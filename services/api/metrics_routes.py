"""``GET {prefix}/metrics``: this process's Prometheus metrics (``services.runtime.metrics_http``)."""

# No "from __future__ import annotations": FastAPI reads the routes' annotations as objects.
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from services.runtime.metrics_http import MetricsSource

router = APIRouter()


def install_metrics_source(app: FastAPI, source: MetricsSource | None) -> None:
    app.state.metrics_source = source or MetricsSource()


@router.get(
    "/metrics",
    tags=["health"],
    summary="Prometheus metrics of this process (text exposition format)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def get_metrics(request: Request) -> Response:
    source: MetricsSource = request.app.state.metrics_source
    return await source.response()
