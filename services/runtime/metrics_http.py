"""Serving the metrics: the text exposition of the default registry, with the streams' length,
pending entries and lag read at scrape time (one pipelined round trip per queue, never on the
hot path). The API serves it under its prefix; an orchestrator or worker process on METRICS_PORT."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from domain.errors import BackendError
from services.runtime import metrics

log = logging.getLogger(__name__)

SAMPLE_TIMEOUT_SECONDS = 1.0

type StreamStats = tuple[str, int, int, int | None]


class StreamStatsSource(Protocol):
    def stream_stats(self) -> Awaitable[Sequence[StreamStats]]: ...


class MetricsSource:
    """What a scrape reads: the registry, after the queues' stream gauges are refreshed."""

    def __init__(self, queues: Sequence[StreamStatsSource] = ()) -> None:
        self._queues = queues

    async def _sample(self) -> None:
        for queue in self._queues:
            for stream, length, pending, lag in await queue.stream_stats():
                metrics.STREAM_LENGTH.labels(stream).set(length)
                metrics.STREAM_PENDING.labels(stream).set(pending)
                if lag is not None:
                    metrics.STREAM_LAG.labels(stream).set(lag)

    async def exposition(self) -> bytes:
        """The metrics as text; the stream gauges keep their last values when the backend does
        not answer in time (the scrape itself still answers)."""
        try:
            async with asyncio.timeout(SAMPLE_TIMEOUT_SECONDS):
                await self._sample()
        except (BackendError, TimeoutError) as error:
            log.warning("metrics: stream statistics not read: %s", error)
        return generate_latest(REGISTRY)

    async def response(self) -> Response:
        return Response(await self.exposition(), media_type=CONTENT_TYPE_LATEST)


def metrics_app(source: MetricsSource) -> Starlette:
    """A tiny ASGI app answering ``GET /metrics`` (for METRICS_PORT)."""

    async def scrape(request: Request) -> Response:
        return await source.response()

    return Starlette(routes=[Route("/metrics", scrape, methods=["GET"])])
