"""A run's events as Server-Sent Events (``GET /runs/{id}/events``), written by the route itself.

Each event is ``event: <kind>``, ``data: <RunEventView JSON>``, ``id: <number>``; the stream is the
history so far, then live entries until the one that ends the run (it has ``run_status``), then it
closes. Between reads it waits for the engine's word that the run changed (``service.watch``, begun
before the first read), not for a timer (word of changes that left the run going is gathered for up
to ``SETTLE_SECONDS`` first), and it sends a comment (``: ping``) after
``PING_SECONDS`` without an event, so that proxies keep the connection.

Every entry of one read of the history leaves in one write: the events of a 2,000-node run (several
thousand) went one write, two task switches and a pydantic model of the event's frame each through
FastAPI's own SSE responses, which cost the API about 50 microseconds an event.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from domain.errors import NotFound
from domain.history import HistoryEntry
from domain.ports import RunWatch
from domain.statuses import RunStatus
from services.api.resource_schemas import run_event
from services.application.workflows import WorkflowService
from services.runtime.resilience import retrying

EVENTS_PAGE = 500
"""History entries read at once."""
PING_SECONDS = 15.0
"""A comment is sent after this long without an event (FastAPI's own SSE default)."""
PING = b": ping\n\n"
SETTLE_SECONDS = 0.005
"""After word of a change that left the run going, the stream waits this long at most for more word
before it reads the history: the steps of a chain, under a millisecond apart, then leave in one
read and one write instead of one each. Each read took the API's CPU and Redis's time from the
engine on the same machine (W1 over SSE ran the engine a third slower than a long-poll did).
Word of an end, or word that tells no status, is read at once: a client waiting for the end
waits no longer."""

HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
"""``X-Accel-Buffering``: for nginx not to hold the events back."""

ITEM_SCHEMA = {
    "type": "object",
    "properties": {
        "data": {"type": "string", "description": "A RunEventView, as JSON."},
        "event": {"type": "string", "description": "Its kind."},
        "id": {"type": "string", "description": "Its number (send it back as Last-Event-ID to resume)."},
    },
}
"""The OpenAPI ``itemSchema`` of the stream's events (OpenAPI 3.2's form for ``text/event-stream``)."""


def encode_events(entries: list[tuple[int, HistoryEntry]]) -> bytes:
    """The SSE frames of ``entries``, one after the other. The data is compact JSON, one line."""
    return "".join(
        f"event: {entry.kind.value}\ndata: {run_event(number, entry).model_dump_json()}\nid: {number}\n\n"
        for number, entry in entries
    ).encode()


async def event_stream(service: WorkflowService, run_id: str, after: int) -> AsyncIterator[bytes]:
    """The stream's bytes: the events after ``after``, a write per read of the history. The watch
    ends with the stream (the client left, or the run ended)."""
    async with service.watch(run_id) as watch:
        async for chunk in _chunks(service, run_id, after, watch):
            yield chunk


async def _chunks(service: WorkflowService, run_id: str, after: int, watch: RunWatch) -> AsyncIterator[bytes]:
    ended = False
    """Whether the last entry given ended the run: the stream ends unless a redrive follows it."""
    if after > 0:
        # The last entry the client saw may be the one that ended the run.
        seen = await retrying(lambda: service.history(run_id, after - 1, 1), "reading a run's events")
        ended = bool(seen) and seen[0][1].run_status is not None
    position = after
    sent_at = time.monotonic()
    while True:
        try:
            entries = await retrying(
                lambda start=position: service.history(run_id, start, EVENTS_PAGE),  # type: ignore[misc]
                "reading a run's events",
            )
        except NotFound:
            return  # expired after its retention
        if not entries and ended:
            return
        if entries:
            yield encode_events(entries)
            sent_at = time.monotonic()
            position = entries[-1][0]
            ended = entries[-1][1].run_status is not None
        if ended and len(entries) < EVENTS_PAGE:
            return
        if len(entries) < EVENTS_PAGE:
            silent = time.monotonic() - sent_at
            if silent >= PING_SECONDS:
                yield PING
                sent_at, silent = time.monotonic(), 0.0
            if await watch.changed(min(service.recheck_seconds, PING_SECONDS - silent)):
                await settle(watch, SETTLE_SECONDS)


async def settle(watch: RunWatch, seconds: float) -> None:
    """Return once the latest word may tell an end (a final status, or none told), or ``seconds``
    after the call, whichever comes first: word of changes that left the run going is gathered."""
    deadline = time.monotonic() + seconds
    while _going(watch.told_status()):
        left = deadline - time.monotonic()
        if left <= 0 or not await watch.changed(left):
            return


def _going(status: RunStatus | None) -> bool:
    return status is not None and not status.is_final
