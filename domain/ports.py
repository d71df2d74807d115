"""Ports: what the services need from the outside world, as ``typing.Protocol``s.

Every port has an in-memory adapter and (for production) a Redis adapter; both pass one contract
suite. Methods raise ``domain.errors.NotFound`` for unknown ids; adapters translate driver errors
into their own error base.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from domain.events import Command, Event
from domain.history import HistoryEntry
from domain.idempotency import IdempotentStart
from domain.map_state import ItemRun
from domain.messages import Task
from domain.paging import Page
from domain.plan import WorkflowPlan
from domain.run import Run
from domain.statuses import RunStatus


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class IdGenerator(Protocol):
    def new_id(self) -> str: ...


@dataclass(frozen=True, slots=True)
class StoredDefinition:
    definition_id: str
    plan: WorkflowPlan
    created_at: float
    version: int = 0
    """1 for the first definition registered under its name, then 2, 3 ...; 0 until stored."""
    request: IdempotentStart | None = None
    """The idempotency key it was registered with, and its request's fingerprint."""

    @property
    def name(self) -> str:
        return self.plan.name

    def summary(self) -> DefinitionSummary:
        return DefinitionSummary(
            self.definition_id, self.name, self.version, self.created_at, len(self.plan.nodes)
        )


@dataclass(frozen=True, slots=True)
class DefinitionSummary:
    definition_id: str
    name: str
    version: int
    created_at: float
    node_count: int


class DefinitionRepository(Protocol):
    async def add(self, definition: StoredDefinition) -> StoredDefinition:
        """Store a definition as the next version of its name; returns it with that version. Raises
        ``DefinitionAlreadyExists`` (storing nothing, taking no version) when its id is taken,
        atomically: what makes an idempotent registration happen once across API replicas."""
        ...

    async def get(self, definition_id: str) -> StoredDefinition: ...

    async def page(self, name: str | None, cursor: str | None, limit: int) -> Page[DefinitionSummary]:
        """Definitions newest first (every version), only those named ``name`` when given."""
        ...


@dataclass(frozen=True, slots=True)
class RunSummary:
    run_id: str
    definition_id: str
    workflow: str
    status: RunStatus
    created_at: float
    started_at: float | None
    finished_at: float | None

    @classmethod
    def of(cls, run: Run) -> RunSummary:
        return cls(
            run.run_id,
            run.definition_id,
            run.plan.name,
            run.status,
            run.created_at,
            run.started_at,
            run.finished_at,
        )


@dataclass(frozen=True, slots=True)
class RunQuery:
    workflow: str | None = None
    """A workflow name: runs of every version registered under it."""
    status: RunStatus | None = None
    cursor: str | None = None
    limit: int = 50


def run_revision(commits: int, created_at: float) -> str:
    """A run's revision (``RunRepository.revision``): the number of commits made to it, and its
    creation time, which tells apart two runs stored under one id one after the other (an
    idempotency key used again after the first run's retention)."""
    return f"{commits}@{created_at!r}"


@dataclass(frozen=True, slots=True)
class RunSnapshot:
    run: Run
    revision: str
    """The revision of the state ``run`` holds (read with it)."""


class RunRepository(Protocol):
    async def add(self, run: Run) -> None:
        """Store a new PENDING run and queue its ``RunStarted`` event in one atomic step."""
        ...

    async def get(self, run_id: str, *, outputs: bool = True) -> Run:
        """A snapshot of the run for reading; transitions go through ``apply``. With
        ``outputs=False`` the store may leave ``Run.outputs`` empty (cheaper for status reads)."""
        ...

    async def revision(self, run_id: str) -> str:
        """The run's revision (``run_revision``): it changes with every commit of the run (every
        ``apply`` that changes it), so a reader that keeps what it built from a snapshot knows
        whether it is still current. One small read, whatever the size of the run; raises
        ``NotFound`` as ``get`` does."""
        ...

    async def snapshot(self, run_id: str, *, outputs: bool = True) -> RunSnapshot:
        """``get``, with the revision of the state read (read together, in one step)."""
        ...

    async def status(self, run_id: str) -> RunStatus:
        """The run's status alone: one small read, whatever the size of the run (for readers
        waiting for its end); raises ``NotFound`` as ``get`` does."""
        ...

    async def apply(
        self, events: Sequence[Event], delivered: Sequence[Delivery[Event]] = ()
    ) -> list[Command]:
        """Apply each event to its run, in order, by ``Run.apply`` (the store decides nothing).

        In the same atomic step as each run's state change, the store enqueues the tasks and stores
        the timers of its outcome (``domain.outbox``), and appends its history entry, so a crash can
        never keep a state change and lose its consequences. Stale, duplicate and unknown-run events
        change nothing. ``delivered``: the deliveries the events came in (same order), acknowledged
        on the event bus in the same step as their effect (the caller does not acknowledge them).
        Returns the commands of the outcomes (a ``FinishRun`` for each run the batch ended among
        them).
        """
        ...

    async def read_data(self, run_id: str, roots: Collection[str]) -> dict[str, Any]:
        """Outputs of the named nodes that have one, and ``workflow`` -> ``{"input": ...}``; a map
        node's output is the list of its items' outputs (``item_outputs``).

        Raises ``RunNotActive`` when the run is no longer RUNNING (cancelled): its queued nodes
        must not start.
        """
        ...

    async def history(self, run_id: str, after: int, limit: int) -> list[tuple[int, HistoryEntry]]:
        """The run's history entries numbered above ``after`` (numbers start at 1), oldest first."""
        ...

    async def item_records(self, run_id: str, node_id: str, start: int, stop: int) -> dict[int, ItemRun]:
        """The final records of map node ``node_id``'s items in ``[start, stop)`` that have ended
        (an item absent has not: the run's state says whether it is live). A record of an earlier
        life of the map (before a redrive) may be among them: its attempt tells."""
        ...

    async def item_outputs(self, run_id: str, node_id: str, start: int, stop: int) -> list[Any]:
        """The outputs of map node ``node_id``'s items in ``[start, stop)``, in order (None for an
        item without one). ``read_data`` gives a map node's whole output this way."""
        ...

    async def page(self, query: RunQuery) -> Page[RunSummary]:
        """Runs newest first, filtered by ``query``; a page may hold fewer than ``limit`` items
        while ``next_cursor`` is set (the store bounds the work of one call)."""
        ...


@dataclass(frozen=True, slots=True)
class Delivery[T]:
    """A received message and the receipt that acknowledges it.

    ``suspect``: the message was taken back from consumers that went quiet at least twice; it may be
    what kills them, so it arrives alone and its consumer should handle it alone: if it kills the
    consumer again, it does not take other messages down with it."""

    message: T
    receipt: str
    suspect: bool = False


class MessageQueue[T](Protocol):
    """At-least-once queue shared by a group of consumers; unacknowledged messages may return."""

    async def send(self, messages: Sequence[T]) -> None: ...

    async def receive(self, consumer: str, max_count: int, block_seconds: float) -> list[Delivery[T]]:
        """Up to ``max_count`` messages; waits at most ``block_seconds`` when none is ready."""
        ...

    async def ack(self, deliveries: Sequence[Delivery[T]]) -> None: ...

    async def extend(self, consumer: str, deliveries: Sequence[Delivery[T]]) -> None:
        """Heartbeat: the consumer still works on these; keep others from reclaiming them."""
        ...

    async def maintain(self) -> None:
        """Periodic housekeeping (trimming, pruning idle consumers); safe to call from anywhere."""
        ...


class TaskQueue(MessageQueue[Task], Protocol):
    """Tasks, one queue (worker pool) per ``Task.queue``: a task is sent to its own queue, and a
    consumer receives only from the queues it serves (``serving``)."""

    def serving(self, queues: Sequence[str]) -> TaskQueue:
        """The same queues, received from for ``queues`` only (what one worker serves)."""
        ...

    async def requeue(self, deliveries: Sequence[Delivery[Task]]) -> None:
        """Put received tasks back at the end of their queue for another consumer, atomically with
        acknowledging them (never lost, never both)."""
        ...


type EventBus = MessageQueue[Event]


@dataclass(frozen=True, slots=True)
class WorkerAnnouncement:
    """What one live worker serves: its queues and the handlers it has."""

    worker_id: str
    queues: frozenset[str]
    handlers: frozenset[str]


class WorkerDirectory(Protocol):
    """Which workers are alive and what they serve. Each worker announces itself and repeats it
    before ``ttl_seconds`` pass; one that stops repeating (dead, paused) drops out by itself."""

    async def announce(self, announcement: WorkerAnnouncement, ttl_seconds: float) -> None: ...

    async def withdraw(self, worker_id: str) -> None:
        """A worker that stops gracefully leaves at once."""
        ...

    async def live(self) -> list[WorkerAnnouncement]:
        """Every worker whose announcement has not lapsed, by worker id."""
        ...


class AttemptLogStore(Protocol):
    """What handlers logged, per (run, node, attempt); kept as long as the run
    (``RUN_RETENTION_SECONDS`` after the last line written) and at most
    ``domain.attempt_logs.MAX_LINES`` lines per attempt (later lines are dropped)."""

    async def append(self, run_id: str, node_id: str, attempt: int, lines: Sequence[str]) -> None:
        """Add ``lines`` to the attempt's log (an attempt run again after a crash adds to it)."""
        ...

    async def read(self, run_id: str, node_id: str, attempt: int) -> list[str]:
        """The attempt's lines, oldest first; empty when it logged nothing (or they expired)."""
        ...


type AttemptRef = tuple[str, str, int]
"""(run id, node id, attempt): one attempt of one node."""


class AttemptSignals(Protocol):
    """Word from the orchestrator to the workers holding attempts: which ones to stop. Which
    attempts a cancel affects is the domain's decision (``CancelAttempts``); this only delivers
    it. A signal is kept at least as long as an attempt can run (the run's retention)."""

    async def cancel(self, run_id: str, attempts: Sequence[tuple[str, int]]) -> None:
        """Mark these attempts (``(node_id, attempt)`` of ``run_id``) to be stopped (idempotent)."""
        ...

    async def cancelled(self, attempts: Collection[AttemptRef]) -> set[AttemptRef]:
        """Those of ``attempts`` marked to be stopped."""
        ...


class ConcurrencySlots(Protocol):
    """Slots of a concurrency key (``domain.concurrency``) shared by every worker on the same store:
    at most ``limit`` holders at once, granted first come first served; a holder's slot lapses
    ``lease_seconds`` after it was last taken or renewed (its worker died), and so does the place in
    line of a waiter that stopped asking."""

    async def acquire(self, key: str, holder: str, limit: int, now: float, lease_seconds: float) -> bool:
        """Take a slot of ``key`` for ``holder`` (a holder that has one keeps it, renewed): True when
        it has one; False when the slots are taken or others have waited longer (``holder`` keeps its
        place in line: ask again)."""
        ...

    async def renew(self, key: str, holder: str, now: float, lease_seconds: float) -> None:
        """Keep ``holder``'s slot of ``key`` (it still runs)."""
        ...

    async def release(self, key: str, holder: str) -> None:
        """Give back ``holder``'s slot of ``key``, or its place in line (idempotent)."""
        ...

    async def holders(self, key: str, now: float) -> int:
        """How many hold a slot of ``key`` now."""
        ...


class TimerStore(Protocol):
    """Timers waiting for their time (retries, attempt deadlines); the run repository sets them as
    part of a transition (``domain.outbox.Timer``)."""

    async def fire_due(self, now: float, max_count: int) -> float | None:
        """Move timers due by ``now`` onto the event bus as their events (``RetryDue``,
        ``AttemptTimedOut``), atomically; at most ``max_count`` per partition of the store (shard),
        so a call stays bounded.

        Returns the earliest due time still waiting (None when none is), to know when to call again.
        """
        ...

    async def next_due_at(self) -> float | None: ...


class RateLimiter(Protocol):
    """Token buckets by key (an API token's name, or a client's address), shared by every process
    on the same store: each holds up to ``burst`` requests and refills at ``rate`` per second."""

    async def take(self, key: str, now: float) -> float:
        """Take one request from ``key``'s bucket: 0.0 when it had one, else the seconds until it
        will have one (nothing taken)."""
        ...


class RunWatch(Protocol):
    """One reader's interest in one run, from ``RunChanges.watch``."""

    async def changed(self, within: float) -> bool:
        """Wait until the run has changed since the watch began, or since this last answered True;
        False when ``within`` seconds passed first (which proves nothing: word can be lost)."""
        ...

    def told_status(self) -> RunStatus | None:
        """The run's status as the latest word of a change told it, when it did: a reader waiting
        for a status need not read the run for word that tells one it is not waiting for. None
        when the word told none (word after the store came back, with what it missed unknown) or
        none came yet: read the run."""
        ...


class RunChanges(Protocol):
    """Word, from the store, that a run's transition was committed: readers wait on it instead of
    polling (a run's event stream, a status request that waits for the end of the run).

    Begin the watch, *then* read the run: a change committed after the read cannot be missed, as
    the watch was there to hear it. Word can still be lost (a broken connection to the store): a
    reader re-reads now and then all the same (``RUN_WAIT_RECHECK_SECONDS``). A watch costs the
    store nothing per watch: the adapter listens once per process and fans word out in-process.
    """

    def watch(self, run_id: str) -> AbstractAsyncContextManager[RunWatch]:
        """Watch ``run_id`` for the duration of the ``async with``; it is forgotten on exit."""
        ...

    def watch_count(self) -> int:
        """Live watches in this process (each ``async with`` not yet left)."""
        ...
