"""Use cases shared by the CLI and the HTTP API: definitions, runs, cancelling, history."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from domain.errors import DefinitionAlreadyExists, InvalidInput, NotFound, Problem, RunAlreadyExists
from domain.events import CancelRequested, RedriveRequested
from domain.history import HistoryEntry
from domain.idempotency import IdempotentStart
from domain.limits import Limits
from domain.paging import Page, check_limit
from domain.plan import WorkflowPlan
from domain.ports import (
    AttemptLogStore,
    Clock,
    DefinitionRepository,
    DefinitionSummary,
    EventBus,
    IdGenerator,
    RunChanges,
    RunQuery,
    RunRepository,
    RunSnapshot,
    RunSummary,
    RunWatch,
    StoredDefinition,
    WorkerDirectory,
)
from domain.redrive import nodes_to_redrive, redrive_refusal, unknown_from_nodes
from domain.run import Run
from domain.shared_reads import SharedReads
from domain.statuses import NodeStatus, RunStatus
from domain.validation import build_plan, typed_input, validate_input
from services.application import map_items, pools
from services.application.errors import (
    IdempotencyKeyReused,
    NodeNotFound,
    RunAlreadyFinished,
    RunNotRedrivable,
    UnknownRedriveNode,
    UsageError,
)
from services.application.waiting import MAX_WAIT_SECONDS, NoWord, status_when_final

QUEUES_SERVED_CACHE_SECONDS = 1.0


class WorkflowService:
    def __init__(
        self,
        *,
        definitions: DefinitionRepository,
        runs: RunRepository,
        events: EventBus,
        clock: Clock,
        ids: IdGenerator,
        limits: Limits,
        known_handlers: frozenset[str] | None = None,
        attempt_logs: AttemptLogStore | None = None,
        default_attempt_timeout_seconds: float | None = None,
        workers: WorkerDirectory | None = None,
        handlers_complete: bool = True,
        builtin_handlers: frozenset[str] = frozenset(),
        changes: RunChanges | None = None,
        recheck_seconds: float = 5.0,
    ) -> None:
        """``known_handlers``: this process's registry. ``handlers_complete``: it is every
        worker's (the embedded backend: workers run in this process), so a handler outside it is
        refused; otherwise (workers elsewhere) it is a warning, from what the live ``workers``
        announced beside the ``builtin_handlers`` every worker has (``registration_warnings``)."""
        self._default_timeout = default_attempt_timeout_seconds
        self._workers = workers
        self._handlers_complete = handlers_complete
        self._builtins = builtin_handlers
        self._queues_served: tuple[float, frozenset[str]] = (-math.inf, frozenset())
        """When the live queues were last read, and what they were: status reads of a busy run
        ask the directory at most once a second."""
        self._queues_reads: SharedReads[None, frozenset[str]] = SharedReads()
        self._attempt_logs = attempt_logs
        self._changes: RunChanges = NoWord() if changes is None else changes
        self.recheck_seconds = recheck_seconds
        """How often a reader waiting for word of a change reads again all the same."""
        self._definitions = definitions
        self._runs = runs
        self._events = events
        self._clock = clock
        self._ids = ids
        self._limits = limits
        self._known_handlers = known_handlers

    # -- definitions -----------------------------------------------------------------------------

    async def register(self, raw: Any, *, if_changed: bool = False) -> StoredDefinition:
        stored, _ = await self.register_once(raw, None, if_changed=if_changed)
        return stored

    async def register_once(
        self, raw: Any, request: IdempotentStart | None, *, if_changed: bool = False
    ) -> tuple[StoredDefinition, bool]:
        """Validate and store a definition as the next version of its name; raises
        ``InvalidDefinition`` with every problem. ``if_changed``: when the newest version of the name
        has the same content, that version is answered and nothing is stored (a registration that is
        retried, or a deploy that registers on every start, makes no new version). With ``request``
        at most once per idempotency key: (the definition, whether the same request registered it
        before); the same key with another request raises ``IdempotencyKeyReused``."""
        plan = build_plan(
            raw,
            self._limits,
            self._known_handlers if self._handlers_complete else None,
            default_attempt_timeout_seconds=self._default_timeout,
        )
        if if_changed:
            newest = await self._definitions.page(plan.name, None, 1)
            if newest.items:
                latest = await self._definitions.get(newest.items[0].definition_id)
                if latest.plan.source == plan.source:
                    return latest, False
        definition_id = self._ids.new_id() if request is None else request.definition_id
        try:
            stored = StoredDefinition(definition_id, plan, self._clock.now(), request=request)
            return await self._definitions.add(stored), False
        except DefinitionAlreadyExists:
            if request is None:
                raise
            earlier = await self._definitions.get(definition_id)
            if earlier.request != request:
                raise IdempotencyKeyReused(request.key, definition_id, "definition") from None
            return earlier, True

    async def registration_warnings(self, plan: WorkflowPlan) -> list[Problem]:
        """What no live worker serves (``pools.registration_warnings``): none without a directory."""
        if self._workers is None:
            return []
        return pools.registration_warnings(plan, await self._workers.live(), self._builtins)

    async def served_handlers(self) -> list[pools.ServedHandler]:
        """What the live workers serve: (queue, handler, workers)."""
        return [] if self._workers is None else pools.served_handlers(await self._workers.live())

    async def queues_served(self, run: Run) -> frozenset[str] | None:
        """The queues live workers serve, when the run view needs them (a node of ``run`` is
        queued); None otherwise, without asking."""
        return await self.live_queues() if _needs_queues(run) else None

    async def live_queues(self) -> frozenset[str] | None:
        """The queues live workers serve, read at most once a second; None without a directory of
        workers."""
        workers = self._workers
        if workers is None:
            return None
        read_at, served = self._queues_served
        if time.monotonic() - read_at <= QUEUES_SERVED_CACHE_SECONDS:
            return served
        # One read for every caller that finds the last one old (``domain.shared_reads``).
        return await self._queues_reads.read(None, lambda: self._read_live_queues(workers))

    async def _read_live_queues(self, workers: WorkerDirectory) -> frozenset[str]:
        served = pools.live_queues(await workers.live())
        self._queues_served = (time.monotonic(), served)
        return served

    @staticmethod
    def queues_for(run: Run, live: frozenset[str] | None) -> frozenset[str] | None:
        """What ``queues_served`` gives for ``run`` when the live queues are ``live``."""
        return live if _needs_queues(run) else None

    async def get_definition(self, definition_id: str) -> StoredDefinition:
        return await self._definitions.get(definition_id)

    async def definitions(self, name: str | None, cursor: str | None, limit: int) -> Page[DefinitionSummary]:
        return await self._definitions.page(name, cursor, check_limit(limit))

    async def latest_definition(self, name: str) -> str:
        """The id of the newest version registered under ``name``."""
        page = await self._definitions.page(name, None, 1)
        if not page.items:
            raise NotFound("workflow", name)
        return page.items[0].definition_id

    # -- runs ------------------------------------------------------------------------------------

    async def start(self, definition_id: str, run_input: Any) -> Run:
        """Create a run of a stored definition (pinned to that version) and announce it; the
        orchestrator takes it on."""
        run, _ = await self.start_once(definition_id, run_input, None)
        return run

    async def start_once(
        self,
        definition_id: str,
        run_input: Any,
        request: IdempotentStart | None,
        started_by: str | None = None,
    ) -> tuple[Run, bool]:
        """``start``, at most once per idempotency key: (the run, whether it was started before by
        the same request). The same key with another request raises ``IdempotencyKeyReused``.
        ``started_by``: the name of the token that asked (recorded on the run and its history)."""
        checked_input = validate_input(run_input, self._limits)
        definition = await self._definitions.get(definition_id)
        checked_input = typed_input(definition.plan, checked_input)
        now = self._clock.now()
        run_id = self._ids.new_id() if request is None else request.run_id
        run = Run.create(run_id, definition_id, definition.plan, checked_input, now, request, started_by)
        try:
            await self._runs.add(run)
        except RunAlreadyExists:
            if request is None:
                raise
            earlier = await self._runs.get(run_id, outputs=False)
            if earlier.start_request != request:
                raise IdempotencyKeyReused(request.key, run_id) from None
            return earlier, True
        return run, False

    async def get_run(self, run_id: str, *, outputs: bool = True) -> Run:
        return await self._runs.get(run_id, outputs=outputs)

    async def run_snapshot(self, run_id: str, *, outputs: bool = True) -> RunSnapshot:
        """``get_run``, with the revision of the state read (``RunRepository.snapshot``)."""
        return await self._runs.snapshot(run_id, outputs=outputs)

    async def run_revision(self, run_id: str) -> str:
        """The run's revision: a small read that changes with every commit of the run."""
        return await self._runs.revision(run_id)

    async def run_status(self, run_id: str) -> RunStatus:
        """The run's status alone: one small read, whatever the size of the run."""
        return await self._runs.status(run_id)

    async def wait_for_run(self, run_id: str, wait_seconds: float) -> RunStatus:
        """The run's status as soon as it is final or once ``wait_seconds`` have passed (0: at
        once); woken by the store's word of each change of the run, not by polling it."""
        if not 0 <= wait_seconds <= MAX_WAIT_SECONDS:  # the routes check it first, with its name
            raise UsageError(f"a wait must be 0 to {MAX_WAIT_SECONDS:g} seconds, got {wait_seconds}")
        return await status_when_final(
            self._changes, run_id, lambda: self._runs.status(run_id), wait_seconds, self.recheck_seconds
        )

    def watch(self, run_id: str) -> AbstractAsyncContextManager[RunWatch]:
        """Word of each change of the run (``domain.ports.RunChanges``): begin it, then read."""
        return self._changes.watch(run_id)

    async def runs(self, query: RunQuery) -> Page[RunSummary]:
        check_limit(query.limit)
        return await self._runs.page(query)

    async def cancel(self, run_id: str, cancelled_by: str | None = None) -> RunStatus:
        """Ask for the run to end CANCELLED; returns its status before. Nodes not yet started never
        start; attempts already running finish but their results are ignored. Raises
        ``RunAlreadyFinished`` when it has ended."""
        run = await self._runs.get(run_id, outputs=False)
        if run.status.is_final:
            raise RunAlreadyFinished(run_id, run.status)
        await self._events.send([CancelRequested(run_id, self._clock.now(), cancelled_by)])
        return run.status

    async def redrive(self, run_id: str, from_nodes: Sequence[str] = ()) -> list[str]:
        """Run a FAILED or CANCELLED run again (``domain.redrive``); returns the nodes that run
        again. The store applies the redrive at once, its commit checking that the run is still the
        one read: of two redrives at the same moment one starts the run, the other finds it RUNNING
        (``RunNotRedrivable``, 409). ``UnknownRedriveNode`` (422) names a node of ``from`` the
        workflow does not have."""
        run = await self._runs.get(run_id, outputs=False)
        problems = unknown_from_nodes(run.plan, from_nodes)
        if problems:
            raise UnknownRedriveNode(problems)
        refusal = redrive_refusal(run, from_nodes)
        if refusal is not None:
            raise RunNotRedrivable(refusal)
        redriven = [run.plan.nodes[index].id for index in nodes_to_redrive(run.plan, run.nodes, from_nodes)]
        # An applied redrive always has commands (it dispatches a node, or ends the run at once).
        if not await self._runs.apply([RedriveRequested(run_id, self._clock.now(), tuple(from_nodes))]):
            now = await self._runs.get(run_id, outputs=False)
            raise RunNotRedrivable(
                redrive_refusal(now, from_nodes) or f"workflow run '{run_id}' changed meanwhile; try again"
            )
        return redriven

    async def results(self, run: Run) -> dict[str, Any]:
        """Every completed node's output (a map's whole list: ``map_items.results``)."""
        return await map_items.results(self._runs, run)

    async def items(self, run_id: str, node_id: str, offset: int, limit: int) -> map_items.ItemsPage:
        """One page of a map node's items (``map_items.items_page``)."""
        return await map_items.items_page(
            self._runs, await self._runs.get(run_id, outputs=False), node_id, offset, limit
        )

    async def history(self, run_id: str, after: int, limit: int) -> list[tuple[int, HistoryEntry]]:
        if after < 0:
            raise InvalidInput([Problem("$.after", f"must be 0 or more, got {after}")])
        return await self._runs.history(run_id, after, check_limit(limit))

    async def attempt_log(self, run_id: str, node_id: str, attempt: int | None) -> AttemptLog:
        """What the node's handler logged during ``attempt`` (default: its latest attempt). Raises
        ``NotFound`` for an unknown run or node, ``InvalidInput`` for an attempt it never had."""
        run = await self._runs.get(run_id, outputs=False)
        if node_id not in run.plan.index:
            raise NodeNotFound(run_id, node_id)
        attempts = run.node(node_id).attempt
        chosen = attempts if attempt is None else attempt
        if attempt is not None and not 1 <= attempt <= max(attempts, 1):
            have = f"attempts 1 to {attempts}" if attempts else "no attempt yet"
            raise UsageError(f"node '{node_id}' of run '{run_id}' has {have}, not attempt {attempt}")
        if chosen == 0 or self._attempt_logs is None:
            return AttemptLog(run_id, node_id, chosen, [])
        return AttemptLog(run_id, node_id, chosen, await self._attempt_logs.read(run_id, node_id, chosen))


@dataclass(frozen=True, slots=True)
class AttemptLog:
    run_id: str
    node_id: str
    attempt: int
    """0 when the node has not started yet."""
    lines: list[str]


def _needs_queues(run: Run) -> bool:
    """Whether the view of ``run`` can name a queue no live worker serves: the run goes on and a
    node of it is queued (or is a map, whose items may be)."""
    if run.status.is_final:
        return False
    return any(node.status is NodeStatus.QUEUED or node.items is not None for node in run.nodes)
