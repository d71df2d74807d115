"""Building every backend's ports the way the composition root does, and helpers shared by the suites.

Three backends run the same contract:

- ``memory``: the in-memory adapters, built by ``services.container.Container`` (the default backend);
- ``fakeredis``: the Redis adapters on ``fakeredis.aioredis.FakeRedis``, built here exactly as the
  container wires them (one ``FakeServer`` per test, so two "processes" can share it);
- ``redis``: the Redis adapters on the session's real ``redis-server``, built by ``Container`` with
  ``backend`` set to ``redis`` and a key prefix unique to the test.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import definitions
import fakeredis
from dependency_injector import providers
from run_snapshots import snapshot

from adapters.redis.attempt_logs import RedisAttemptLogStore
from adapters.redis.bus import RedisEventBus, RedisTaskQueue, RedisTimerStore
from adapters.redis.changes import RedisRunChanges
from adapters.redis.definitions import RedisDefinitionRepository
from adapters.redis.keys import KeySpace
from adapters.redis.rate_limits import RedisRateLimiter
from adapters.redis.runs import RedisRunRepository
from adapters.redis.signals import RedisAttemptSignals
from adapters.redis.slots import RedisConcurrencySlots
from adapters.redis.workers import RedisWorkerDirectory
from adapters.system import SystemClock, UuidIds
from domain.events import Command, Event, FinishRun, RedriveRequested, RunStarted
from domain.history import HistoryEntry
from domain.limits import Limits
from domain.messages import Task
from domain.plan import WorkflowPlan
from domain.ports import (
    AttemptLogStore,
    AttemptSignals,
    ConcurrencySlots,
    DefinitionRepository,
    Delivery,
    EventBus,
    MessageQueue,
    RateLimiter,
    RunChanges,
    RunRepository,
    StoredDefinition,
    TaskQueue,
    TimerStore,
    WorkerDirectory,
)
from domain.run import Run
from domain.validation import build_plan
from services.application.workflows import WorkflowService
from services.container import Container, close_backend
from services.settings import Settings

BACKENDS = ("memory", "fakeredis", "redis", "redis-cluster")
REDIS_BACKENDS = ("fakeredis", "redis", "redis-cluster")
REAL_REDIS = ("redis", "redis-cluster")
"""Backends on real servers: a redis-server, and a Redis Cluster of 3 masters and 3 replicas
(``REDIS_CLUSTER=true``, the same adapters: every call must keep to one slot)."""
SHARDS = 4
FAKE_URL = "redis://fakeredis.invalid:6379/0"
T0 = 1_750_000_000.0
"""Event times of the scenarios (any value works: transitions never read the wall clock)."""

# Reasons shared by several tests.
ONE_PROCESS = "one process: nothing to reclaim"
NO_WIRE_FORMAT = "in-memory queue holds Python objects: no entry can be malformed"
NO_STREAMS = "in-memory queue has no stream to trim and no consumers to prune"
NO_EXPIRY = "in-memory runs live in a dict: nothing expires"
NOT_A_REAL_RACE_MEMORY = "one event loop applies events one by one: there is no concurrent connection to race"
NOT_A_REAL_RACE_FAKE = (
    "fakeredis runs every command and script in-process under one lock: it cannot show a race "
    "between two connections"
)
FAKEREDIS_NO_BLOCK = (
    "fakeredis answers XREADGROUP BLOCK at once with nothing when no entry is waiting (it does not "
    "block), so the waiting time cannot be measured"
)


# -- backends ----------------------------------------------------------------------------------------


@dataclass
class Backend:
    """The ports of one backend, wired as ``services/container.py`` wires them."""

    name: str
    settings: Settings
    definitions: DefinitionRepository
    runs: RunRepository
    tasks: TaskQueue
    events: EventBus
    timers: TimerStore
    attempt_logs: AttemptLogStore
    signals: AttemptSignals
    rate_limiter: RateLimiter
    workers: WorkerDirectory
    changes: RunChanges
    slots: ConcurrencySlots
    keys: KeySpace | None
    client: Any
    """The raw Redis client (None for memory): for looking at streams and keys behind the adapters."""
    _factory: BackendFactory = field(repr=False)

    @property
    def is_redis(self) -> bool:
        return self.name in REDIS_BACKENDS

    async def connect(self, **overrides: Any) -> Backend:
        """The ports another process would build on the same store: own client, empty caches.

        In memory there is only one process, so this is the same set of ports.
        """
        if self.name == "memory":
            return self
        return await self._factory.build(self.settings.model_copy(update=overrides))

    def queue(self, kind: str) -> MessageQueue[Any]:
        return {"tasks": self.tasks, "events": self.events}[kind]

    def stream(self, kind: str, run_id: str) -> str:
        """The stream holding ``kind`` messages of ``run_id`` (Redis backends only)."""
        assert self.keys is not None
        shard = self.keys.shard_for_run(run_id)
        return {"tasks": shard.tasks, "events": shard.events}[kind]

    def dead_stream(self, run_id: str) -> str:
        assert self.keys is not None
        return self.keys.shard_for_run(run_id).dead


class BackendFactory:
    """Builds (and later closes) every set of ports of one test on one store."""

    def __init__(self, name: str, redis_url: str | None) -> None:
        self.name = name
        self.redis_url = redis_url
        self.prefix = f"contract-{uuid.uuid4().hex[:12]}"
        self._fake_server = fakeredis.FakeServer() if name == "fakeredis" else None
        self._closers: list[Callable[[], Awaitable[None]]] = []

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": self.redis_url or FAKE_URL,
            "redis_cluster": self.name == "redis-cluster",
            "redis_key_prefix": self.prefix,
            "redis_shards": SHARDS,
            "visibility_timeout_seconds": 30.0,
            "max_deliveries": 5,
            "run_retention_seconds": 7 * 24 * 3600,
        }
        values.update(overrides)
        return Settings(**values)

    async def build(self, settings: Settings) -> Backend:
        if self.name == "fakeredis":
            return self._build_fakeredis(settings)
        container = Container()
        is_redis = self.name in REAL_REDIS
        container.backend.override(providers.Object("redis" if is_redis else self.name))
        container.settings.override(providers.Object(settings))
        self._closers.append(lambda: close_backend(container))
        return Backend(
            name=self.name,
            settings=settings,
            definitions=container.definitions(),
            runs=container.runs(),
            tasks=container.tasks(),
            events=container.events(),
            timers=container.timers(),
            attempt_logs=container.attempt_logs(),
            signals=container.signals(),
            rate_limiter=container.rate_limiter(),
            workers=container.workers_directory(),
            changes=container.run_changes(),
            slots=container.slots(),
            keys=container.key_space() if is_redis else None,
            client=container.redis_client() if is_redis else None,
            _factory=self,
        )

    def _build_fakeredis(self, settings: Settings) -> Backend:
        """The Redis adapters wired exactly as ``Container`` wires them, on a FakeRedis client."""
        client = fakeredis.aioredis.FakeRedis(server=self._fake_server, decode_responses=True)
        self._closers.append(client.aclose)
        url = FAKE_URL
        keys = KeySpace(settings.redis_key_prefix, settings.redis_shards)
        visibility, deliveries = settings.visibility_timeout_seconds, settings.max_deliveries
        definitions = RedisDefinitionRepository(client, keys, url)
        now = SystemClock().now
        events = RedisEventBus(client, url, keys, visibility, deliveries, now)
        tasks = RedisTaskQueue(client, url, keys, visibility, deliveries, events, now)
        timers = RedisTimerStore(client, url, keys)
        runs = RedisRunRepository(client, keys, definitions, url, settings.run_retention_seconds)
        changes = RedisRunChanges(client, keys, url)
        self._closers.append(changes.close)
        return Backend(
            name=self.name,
            settings=settings,
            definitions=definitions,
            runs=runs,
            tasks=tasks,
            events=events,
            timers=timers,
            attempt_logs=RedisAttemptLogStore(client, keys, url, settings.run_retention_seconds),
            signals=RedisAttemptSignals(client, keys, url, settings.run_retention_seconds),
            rate_limiter=RedisRateLimiter(
                client, keys, url, settings.api_rate_limit_per_second, settings.rate_burst()
            ),
            workers=RedisWorkerDirectory(client, keys, url),
            changes=changes,
            slots=RedisConcurrencySlots(client, keys, url),
            keys=keys,
            client=client,
            _factory=self,
        )

    async def close(self) -> None:
        for close in reversed(self._closers):
            await close()
        self._closers.clear()


def run_ids_in_distinct_shards(count: int, shards: int = SHARDS) -> list[str]:
    """Run ids that the Redis adapters route to ``count`` different shards."""
    keys = KeySpace("any", shards)
    chosen: dict[int, str] = {}
    number = 0
    while len(chosen) < count:
        run_id = f"run-{uuid.uuid4().hex[:8]}-{number}"
        chosen.setdefault(keys.shard_of(run_id), run_id)
        number += 1
    return list(chosen.values())


# -- definitions -------------------------------------------------------------------------------------


# Every node's handler is ``h-<id>`` unless given; workflows are named "contract" unless named.
node = partial(definitions.node, handler=definitions.handler_named_after_id)
workflow = partial(definitions.workflow, name="contract")
diamond = partial(definitions.diamond, name="contract", handler=definitions.handler_named_after_id)


def retry(max_attempts: int, backoff: float) -> dict[str, Any]:
    return {"max_attempts": max_attempts, "initial_backoff_seconds": backoff, "backoff_multiplier": 2.0}


# -- runs --------------------------------------------------------------------------------------------


def new_id(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


async def store_definition(backend: Backend, raw: dict[str, Any]) -> StoredDefinition:
    stored = StoredDefinition(new_id("def"), build_plan(raw), T0)
    await backend.definitions.add(stored)
    return stored


async def add_run(
    backend: Backend,
    raw: dict[str, Any] | StoredDefinition,
    run_input: dict[str, Any] | None = None,
    run_id: str | None = None,
) -> Run:
    """Store the definition (when raw) and a new PENDING run of it; returns the run as created."""
    stored = raw if isinstance(raw, StoredDefinition) else await store_definition(backend, raw)
    run = Run.create(run_id or new_id("run"), stored.definition_id, stored.plan, run_input or {}, T0)
    await backend.runs.add(run)
    return run


async def drain[T](
    queue: MessageQueue[T],
    count: int,
    *,
    consumer: str = "contract",
    max_count: int = 100,
    within: float = 5.0,
) -> list[Delivery[T]]:
    """Receive until at least ``count`` deliveries arrived; fails after ``within`` seconds."""
    received: list[Delivery[T]] = []
    deadline = time.monotonic() + within
    while len(received) < count:
        assert time.monotonic() < deadline, f"received {len(received)} of {count}: {received}"
        received.extend(await queue.receive(consumer, max_count, 0.1))
    return received


async def nothing_waiting(queue: MessageQueue[Any], consumer: str = "contract") -> bool:
    return await queue.receive(consumer, 100, 0.01) == []


@dataclass
class Driver:
    """Plays the orchestrator and the workers of one run through the ports, as the services do:
    events travel over the event bus (a success's output is staged by ``send``), the received
    events are applied, tasks are taken from the task queue.

    It also applies every event to a reference ``domain.run.Run`` of its own, and after each apply
    checks that the store's run is the same as the reference (``mirror``): a store must mirror the
    aggregate exactly.
    """

    backend: Backend
    run: Run
    mirror: bool = True
    commands: list[Command] = field(default_factory=list)
    reference: Run = field(init=False)
    expected_history: list[HistoryEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        run = self.run
        self.reference = Run.create(
            run.run_id,
            run.definition_id,
            run.plan,
            copy.deepcopy(run.input),
            run.created_at,
            run.start_request,
        )

    @property
    def run_id(self) -> str:
        return self.run.run_id

    async def begin(self) -> list[Command]:
        """Receive the ``RunStarted`` the add queued, and apply it."""
        received = await drain(self.backend.events, 1, consumer="orchestrator")
        assert [d.message for d in received] == [RunStarted(self.run_id, T0, self.run.definition_id)]
        return await self.apply_received(received)

    async def deliver(self, *events: Event) -> list[Command]:
        """Send ``events`` over the bus, receive them (in order), apply them, acknowledge them."""
        await self.backend.events.send(list(events))
        received = await drain(self.backend.events, len(events), consumer="orchestrator")
        assert [type(d.message) for d in received] == [type(e) for e in events]
        return await self.apply_received(received, events)

    async def apply_received(
        self, received: Sequence[Delivery[Event]], originals: Sequence[Event] | None = None
    ) -> list[Command]:
        """Apply received events, acknowledge them; ``originals``: as sent (a success with its output)."""
        # The store acknowledges the deliveries with their effect, as the orchestrator has it do.
        commands = await self.backend.runs.apply([d.message for d in received], received)
        self.commands.extend(commands)
        if self.mirror:
            expected: list[Command] = []
            for event in originals if originals is not None else [d.message for d in received]:
                if event.run_id == self.run_id:
                    outcome = self.reference.apply(event)
                    if outcome is not None:
                        expected += outcome.commands
                        self.expected_history.append(outcome.entry)
            assert finishes(commands) == finishes(expected)
            stored, reference = mirror_snapshot(await self.get()), mirror_snapshot(self.reference)
            assert stored == reference, "the store diverges from domain.run.Run"
            history = await self.backend.runs.history(self.run_id, 0, 100_000)
            assert [number for number, _ in history] == list(range(1, len(history) + 1))
            assert [comparable(e) for _, e in history] == [comparable(e) for e in self.expected_history], (
                "the store's history diverges from the aggregate's entries"
            )
        return commands

    async def take_tasks(self, count: int, *, exactly: bool = False) -> list[Task]:
        """Take and acknowledge the ``count`` tasks waiting; ``exactly``: and check none is left."""
        received = await drain(self.backend.tasks, count, consumer="worker")
        await self.backend.tasks.ack(received)
        tasks = [d.message for d in received]
        assert len(tasks) == count, tasks
        if exactly:
            assert await nothing_waiting(self.backend.tasks, "worker"), "more tasks than expected"
        return tasks

    async def get(self) -> Run:
        return await self.backend.runs.get(self.run_id)

    def task(self, node_id: str, attempt: int = 1) -> Task:
        return Task(self.run_id, self.run.definition_id, node_id, attempt, f"h-{node_id}")


def comparable(entry: HistoryEntry) -> dict[str, Any]:
    """An entry as JSON (exactly: the Redis store keeps times as written, to the last digit)."""
    return entry.to_json()


def finishes(commands: Iterable[Command]) -> list[FinishRun]:
    return [c for c in commands if isinstance(c, FinishRun)]


def mirror_snapshot(run: Run) -> tuple[Any, ...]:
    """``snapshot`` for comparing a store's run with the reference aggregate: exactly, as the Redis
    store keeps times to the last digit."""
    return snapshot(run)


def plan_shape(plan: WorkflowPlan) -> tuple[Any, ...]:
    """What a stored plan must give back: names, node ids, handlers, parents, config, policies."""
    return (
        plan.name,
        dict(plan.index),
        plan.roots,
        tuple(
            (
                spec.id,
                spec.index,
                spec.handler,
                spec.parent_ids,
                spec.parents,
                spec.children,
                spec.config.source,
                spec.retry,
                spec.timeout_seconds,
                spec.heartbeat_timeout_seconds,
                spec.reads,
            )
            for spec in plan.nodes
        ),
        plan.default_attempt_timeout_seconds,
    )


ONE_SERVER_STATS = {
    "memory": "no store to ask",
    "fakeredis": "fakeredis has no INFO command",
    "redis-cluster": "a cluster client's INFO answers one node's statistics: the plain server shows it",
}
"""Why a test counting the commands Redis ran (``commands_run``) runs on the plain server only."""


async def commands_run(backend: Backend, action: Callable[[], Awaitable[object]]) -> dict[str, int]:
    """The commands Redis ran for ``action``, by name and count (INFO commandstats, reset just
    before), without the statistics' own commands."""
    await backend.client.config_resetstat()
    await action()
    stats = await backend.client.info("commandstats")
    called = {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
    return {name: calls for name, calls in called.items() if name not in ("info", "config|resetstat")}


class FixedClock:
    def __init__(self, at: float) -> None:
        self.at = at

    def now(self) -> float:
        return self.at


def service_of(backend: Backend, at: float) -> WorkflowService:
    """The use cases on ``backend``'s stores, their clock at ``at``."""
    return WorkflowService(
        definitions=backend.definitions,
        runs=backend.runs,
        events=backend.events,
        clock=FixedClock(at),
        ids=UuidIds(),
        limits=Limits(),
    )


async def redrive(driver: Driver, at: float, *from_nodes: str) -> list[str]:
    """Redrive through the use case (as the API does); the reference aggregate gets the same event,
    and the store must mirror it, history included."""
    redriven = await service_of(driver.backend, at).redrive(driver.run_id, list(from_nodes))
    outcome = driver.reference.apply(RedriveRequested(driver.run_id, at, tuple(from_nodes)))
    assert outcome is not None
    driver.expected_history.append(outcome.entry)
    assert mirror_snapshot(await driver.get()) == mirror_snapshot(driver.reference)
    history = await driver.backend.runs.history(driver.run_id, 0, 1000)
    assert [comparable(e) for _, e in history] == [comparable(e) for e in driver.expected_history]
    return redriven
