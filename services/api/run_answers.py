"""The answers of a run's two status routes (the seed's ``GET /workflows/{id}``, the resource API's
``GET /runs/{id}``), kept encoded per revision of the run.

Building the answer for a 20,000-node run costs 0.2-0.4 s of Python (the read, the read model,
the views, the JSON), while most reads of a big run find it as it was, or changed in a
few nodes since the previous poll. So each API process keeps, per (run, shape), the bytes it last
answered, with the run's revision they were built from (``RunRepository.revision``, which changes
with every commit of the run) and the live queues their reasons used. A read first asks for the
revision (one small read, whatever the run's size): when it is the one kept, the kept bytes are
the answer and no view is built. With nothing kept (the first read of a run) it builds at once,
the build's own read giving the revision.

A big run that changes all the time (a poller of a 20,000-node run in full flight) would have its
answer built on every read, each build costing tens of milliseconds: one client polling every 2 ms
would keep a core of the API busy, taking it from the engine on the same machine. So while the run's
status stays what it was, an answer is built again at most once per ``spacing`` times its last
build's duration (``API_STATUS_REBUILD_SPACING``; at its default of 3, rebuilding one run takes at
most a quarter of the API's time); meanwhile readers get the kept answer, at most that much behind the
run's nodes. A change of the run's status (started, final, redriven) is always seen at once: the
kept answer is used only after one small read shows the status it was built with (read with the
revision, in the same round trip). A run answered in
1 ms is built again after 3 ms; 0 turns the spacing off (every change is answered at once).

Every answer carries a strong ``ETag``, a digest of its bytes, so that every API process gives the
same tag for the same answer, and ``Cache-Control: no-cache`` (a cache must ask again each time);
a request whose ``If-None-Match`` names the tag gets 304 without a body. Concurrent reads that miss
for the same run and revision share one build.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import FastAPI, Request, Response

from domain.statuses import RunStatus
from services.application.run_view import RunView, run_view
from services.application.workflows import WorkflowService

MAX_ANSWERS = 256
"""Answers one API process keeps at most (least recently used first out)."""
MAX_ANSWER_BYTES = 128 * 1024 * 1024
"""Their bytes at most (a 20,000-node run's answer is about 3-5 MiB)."""


@dataclass(frozen=True, slots=True)
class Shape:
    """One route's shape of a run's answer."""

    name: str
    encode: Callable[[RunView], bytes]
    """The answer's JSON."""


@dataclass(frozen=True, slots=True)
class Answer:
    revision: str
    """The revision of the run's state the answer was built from."""
    queues: frozenset[str] | None
    """The live queues its reasons were built with; None: they used none."""
    body: bytes
    etag: str
    status: RunStatus
    """The run's status the answer shows."""
    rebuild_after: float
    """When (``time.monotonic``) a change of the run that left its status as it was is answered by a
    new build instead of this answer."""


type AnswerKey = tuple[str, str]
"""(run id, shape name)."""


class AnswerCache:
    """Answers by (run id, shape), bounded in number and bytes, least recently used first out."""

    def __init__(
        self,
        max_answers: int = MAX_ANSWERS,
        max_bytes: int = MAX_ANSWER_BYTES,
        *,
        spacing: float,
    ) -> None:
        self.spacing = spacing
        """Builds of a run's answer are this many times their duration apart at least while the
        run's status holds (module docstring); 0: every change is answered at once."""
        self._answers: OrderedDict[AnswerKey, Answer] = OrderedDict()
        self._bytes = 0
        self._max_answers = max_answers
        self._max_bytes = max_bytes
        self._building: dict[AnswerKey, tuple[str | None, asyncio.Task[Answer]]] = {}
        """Builds in flight, with the revision read before each began (None: none was read)."""

    def get(self, key: AnswerKey) -> Answer | None:
        answer = self._answers.get(key)
        if answer is not None:
            self._answers.move_to_end(key)
        return answer

    def put(self, key: AnswerKey, answer: Answer) -> None:
        earlier = self._answers.pop(key, None)
        if earlier is not None:
            self._bytes -= len(earlier.body)
        if len(answer.body) > self._max_bytes:
            return  # larger than the whole cache: answered, not kept
        self._answers[key] = answer
        self._bytes += len(answer.body)
        while len(self._answers) > self._max_answers or self._bytes > self._max_bytes:
            _, oldest = self._answers.popitem(last=False)
            self._bytes -= len(oldest.body)

    def __len__(self) -> int:
        return len(self._answers)

    def building(self, key: AnswerKey) -> bool:
        """Whether a build for ``key`` is in flight."""
        return key in self._building

    async def build_once(
        self, key: AnswerKey, revision: str | None, build: Callable[[], asyncio.Task[Answer]]
    ) -> Answer:
        """The answer a build started by ``build`` gives, kept; a build for the same key already in
        flight from the same revision is awaited instead of starting another (never for a
        revision of None: unread, it may be older than the reader's). A reader that leaves (its
        request cancelled) does not cancel the build the others await."""
        building = self._building.get(key)
        if building is None or revision is None or building[0] != revision:
            task = build()
            building = self._building[key] = (revision, task)
            task.add_done_callback(lambda done: self._built(key, done))
        return await asyncio.shield(building[1])

    def _built(self, key: AnswerKey, task: asyncio.Task[Answer]) -> None:
        building = self._building.get(key)
        if building is None or building[1] is not task:
            return  # a build from a later revision began meanwhile: its answer is the one kept
        del self._building[key]
        if not task.cancelled() and task.exception() is None:
            self.put(key, task.result())


NOT_MODIFIED: dict[int | str, dict[str, object]] = {
    304: {"description": "Not Modified: `If-None-Match` names the answer's `ETag` (no body)."}
}
"""OpenAPI ``responses`` of a route answered by ``run_answer``, beside its errors."""


def install_answer_cache(app: FastAPI, spacing: float) -> None:
    app.state.run_answers = AnswerCache(spacing=spacing)


def answer_cache_of(request: Request) -> AnswerCache:
    cache: AnswerCache = request.app.state.run_answers
    return cache


async def run_answer(request: Request, service: WorkflowService, run_id: str, shape: Shape) -> Response:
    """The run's answer in ``shape``: the kept bytes when the run has not changed since they were
    built, else built (and kept); 304 when ``If-None-Match`` names its tag. ``NotFound`` (404) for
    a run that is not stored."""
    cache = answer_cache_of(request)
    key = (run_id, shape.name)
    kept = cache.get(key)

    def build() -> asyncio.Task[Answer]:
        return asyncio.ensure_future(_build(service, run_id, shape, cache.spacing))

    if kept is None and not cache.building(key):
        # Nothing to compare with: the build reads the run (and its revision) at once, without a
        # read of the revision first (the first read of a run, e.g. the answer to a long-poll).
        kept = await cache.build_once(key, None, build)
    else:
        revision, status = await _revision_and_status(service, run_id, kept)
        if kept is None or not await _still_answers(service, revision, status, kept):
            kept = await cache.build_once(key, revision, build)
    headers = {"etag": kept.etag, "cache-control": "no-cache"}
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and names_tag(if_none_match, kept.etag):
        return Response(status_code=304, headers=headers)
    return Response(kept.body, media_type="application/json", headers=headers)


async def _revision_and_status(
    service: WorkflowService, run_id: str, kept: Answer | None
) -> tuple[str, RunStatus | None]:
    """The run's revision; and its status when ``kept`` may answer a run that changed since it was
    built (``_still_answers``), read in the same round trip (the two reads leave in one pipeline of
    the store's coalescer): a poller of a run in flight makes one round trip per read, not two."""
    if kept is None or time.monotonic() >= kept.rebuild_after:
        return await service.run_revision(run_id), None
    revision, status = await asyncio.gather(
        service.run_revision(run_id), service.run_status(run_id), return_exceptions=True
    )
    for read in (revision, status):
        if isinstance(read, BaseException):
            raise read
    assert isinstance(revision, str) and isinstance(status, RunStatus)
    return revision, status


async def _still_answers(
    service: WorkflowService, revision: str, status: RunStatus | None, kept: Answer
) -> bool:
    """Whether ``kept`` answers a read of the run at ``revision`` (and ``status``, when read):
    built from it, or built recently enough from an earlier one with the run's status still the one
    it shows (module docstring); and built with the queues live now."""
    if kept.queues is not None and kept.queues != await service.live_queues():
        return False
    if kept.revision == revision:
        return True
    return time.monotonic() < kept.rebuild_after and status is kept.status


async def _build(service: WorkflowService, run_id: str, shape: Shape, spacing: float) -> Answer:
    began = time.monotonic()
    # The live queues first: nothing awaits between the read of the run and its encoding, so the
    # revision read with it is the state encoded even where the store hands out its live run.
    live = await service.live_queues()
    snapshot = await service.run_snapshot(run_id, outputs=False)
    queues = service.queues_for(snapshot.run, live)
    body = shape.encode(run_view(snapshot.run, queues))
    etag = entity_tag(body)
    built = time.monotonic()
    return Answer(
        snapshot.revision, queues, body, etag, snapshot.run.status, built + spacing * (built - began)
    )


def entity_tag(body: bytes) -> str:
    """A strong tag: the same bytes give the same tag in every process. SHA-256 is the fastest
    digest here (the CPU's SHA instructions: about 3 ms for a 20,000-node run's 4.7 MB)."""
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def names_tag(if_none_match: str, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (``*``, or a list of tags compared
    weakly, as RFC 9110 has it for this header)."""
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))
