"""Runs as hashes; every transition is one atomic script (``lua/transition.lua``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Sequence
from typing import Any

from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError, ResponseError

from adapters.errors import AdapterError
from adapters.redis.coalescer import Coalescer
from adapters.redis.codec import STAGED, encode_event
from adapters.redis.connection import Redis, translated_errors
from adapters.redis.definitions import RedisDefinitionRepository
from adapters.redis.keys import KeySpace
from adapters.redis.pages import members_after
from adapters.redis.scripts import Script, first_noscript
from domain.errors import NotFound, RunNotActive
from domain.events import (
    AttemptTimedOut,
    CancelRequested,
    Command,
    Event,
    EventDeadLettered,
    FinishRun,
    NodeFailed,
    NodeStarted,
    NodeSucceeded,
    RetryDue,
    RunStarted,
)
from domain.history import EntryKind, HistoryEntry
from domain.paging import Page, Position, decode_cursor, encode_cursor
from domain.plan import WorkflowPlan
from domain.ports import RunQuery, RunSummary
from domain.run import ErrorInfo, FailedAttempt, NodeRun, Run
from domain.statuses import NodeStatus, RunStatus
from domain.templates import WORKFLOW_NAMESPACE

log = logging.getLogger(__name__)

ROOTS_FIELD = "@roots"
INPUT_CACHE_SIZE = 10_000
# At most this many runs are looked at for one page of a filtered listing.
LIST_SCAN_BUDGET = 1_000
_SUMMARY_FIELDS = ("status", "definition_id", "workflow", "created_at", "started_at", "finished_at")


def graph_fields(plan: WorkflowPlan) -> dict[str, str]:
    """What the transition script reads of a definition, per node."""
    fields = {
        spec.id: json.dumps(
            {
                "h": spec.handler,
                "c": [plan.nodes[child].id for child in spec.children],
                "m": spec.retry.max_attempts,
                "i": spec.retry.initial_backoff_seconds,
                "x": spec.retry.backoff_multiplier,
                "b": spec.retry.max_backoff_seconds,
                # The words the domain uses when an attempt times out (domain/run.py).
                "t": "its timeout"
                if spec.timeout_seconds is None
                else f"the timeout of {spec.timeout_seconds}s",
            },
            separators=(",", ":"),
        )
        for spec in plan.nodes
    }
    fields[ROOTS_FIELD] = json.dumps([plan.nodes[root].id for root in plan.roots])
    return fields


def _meta_fields(run: Run) -> dict[str, str]:
    return {
        "status": RunStatus.PENDING.value,
        "definition_id": run.definition_id,
        "workflow": run.plan.name,
        "created_at": repr(run.created_at),
        "unfinished": str(len(run.nodes)),
        "in_flight": "0",
        "failed": "0",
        "input": json.dumps(run.input),
    }


def _node_fields(run: Run) -> dict[str, str]:
    return {
        spec.id: json.dumps({"s": "PENDING", "a": 0, "w": len(spec.parents)}, separators=(",", ":"))
        for spec in run.plan.nodes
    }


def _event_args(event: Event) -> tuple[str, str, str, int, list[str]]:
    """(kind, at, node id, attempt, extra arguments) for the transition script."""
    at = repr(event.at)
    match event:
        case RunStarted():
            return "start", at, "", 0, []
        case CancelRequested():
            return "cancel", at, "", 0, []
        case NodeStarted():
            return "started", at, event.node_id, event.attempt, [event.worker_id]
        case NodeSucceeded():
            inline = "" if event.output is STAGED else json.dumps(event.output, separators=(",", ":"))
            return (
                "ok",
                at,
                event.node_id,
                event.attempt,
                [*_ran_by(event.worker_id, event.started_at), inline],
            )
        case NodeFailed():
            retryable = "1" if event.retryable else "0"
            failure = [event.error_type, event.message, retryable]
            return (
                "fail",
                at,
                event.node_id,
                event.attempt,
                failure + _ran_by(event.worker_id, event.started_at),
            )
        case AttemptTimedOut():
            return "timeout", at, event.node_id, event.attempt, []
        case RetryDue():
            return "retry", at, event.node_id, event.attempt, []
        case EventDeadLettered():
            return "dead", at, event.node_id or "", event.attempt, [event.message]


def _ran_by(worker_id: str, started_at: float | None) -> list[str]:
    return [worker_id, "" if started_at is None else repr(started_at)]


def _optional_float(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


def _node_run(raw: str) -> NodeRun:
    state = json.loads(raw)
    error = state.get("e")
    failed = [
        FailedAttempt(int(a), _optional_float(started), float(finished), ErrorInfo(kind, message))
        for a, started, finished, kind, message in state.get("fa", [])
    ]
    return NodeRun(
        waiting_on=int(state["w"]),
        status=NodeStatus(state["s"]),
        attempt=int(state["a"]),
        queued_at=_optional_float(state.get("q")),
        started_at=_optional_float(state.get("st")),
        finished_at=_optional_float(state.get("f")),
        worker_id=state.get("wk"),
        error=None if error is None else ErrorInfo(error[0], error[1]),
        retry_at=_optional_float(state.get("r")),
        failed_attempts=failed or None,
    )


class RedisRunRepository:
    """``domain.ports.RunRepository`` on Redis."""

    def __init__(
        self,
        client: Redis,
        keys: KeySpace,
        definitions: RedisDefinitionRepository,
        url: str,
        retention_seconds: int,
    ) -> None:
        self._client = client
        self._keys = keys
        self._definitions = definitions
        self._url = url
        self._retention = str(retention_seconds)
        self._coalescer = Coalescer.for_client(client, url)
        self._transition = Script("transition")
        self._add_script = Script("add_run")
        self._read_script = Script("read_run")
        self._inputs: dict[str, str] = {}

    async def add(self, run: Run) -> None:
        """One script call; a second one, carrying the graph, only when Redis lacks the graph (the
        first run of a definition, or a Redis that lost its data: checked every time)."""
        shard = self._keys.shard_for_run(run.run_id)
        keys = self._keys.run(run.run_id)
        graph = shard.graph_prefix + run.definition_id
        script_keys = (keys.meta, keys.nodes, shard.run_index(RunStatus.PENDING.value), shard.events, graph)
        args = [run.run_id, repr(run.created_at)]
        for fields in (
            _meta_fields(run),
            _node_fields(run),
            encode_event(RunStarted(run.run_id, run.created_at)),
        ):
            args.append(str(2 * len(fields)))
            for name, value in fields.items():
                args += (name, value)
        async with translated_errors(self._url):
            if await self._call_script(self._add_script, script_keys, args) == "graph missing":
                graph_args = [part for pair in graph_fields(run.plan).items() for part in pair]
                await self._call_script(self._add_script, script_keys, args + graph_args)

    async def _call_script(self, script: Script, keys: Sequence[str], args: Sequence[str]) -> Any:
        """Coalesced with the other calls of this loop iteration (concurrent API requests)."""
        sha = script.sha or await script.load(self._client)
        try:
            return await self._evalsha(sha, keys, args)
        except AdapterError as error:
            if not isinstance(error.__cause__, NoScriptError):
                raise
        # Redis forgot its scripts (a restart): load and call again (nothing was run).
        return await self._evalsha(await script.load(self._client), keys, args)

    async def _evalsha(self, sha: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        def add(pipe: Pipeline) -> None:
            pipe.evalsha(sha, len(keys), *keys, *args)

        (reply,) = await self._coalescer.run(add)
        return reply

    async def get(self, run_id: str, *, outputs: bool = True) -> Run:
        keys = self._keys.run(run_id)
        wanted = (keys.meta, keys.nodes, keys.out) if outputs else (keys.meta, keys.nodes)
        async with translated_errors(self._url):
            replies = await self._call_script(self._read_script, wanted, ())
        meta, nodes, *stored_outputs = [_pairs(reply) for reply in replies]
        if not meta:
            raise NotFound("workflow run", run_id)
        plan = (await self._definitions.get(meta["definition_id"])).plan
        run = Run(
            run_id=run_id,
            definition_id=meta["definition_id"],
            plan=plan,
            input=json.loads(meta["input"]),
            created_at=float(meta["created_at"]),
            nodes=[_node_run(nodes[spec.id]) for spec in plan.nodes],
            status=RunStatus(meta["status"]),
            started_at=_optional_float(meta.get("started_at")),
            finished_at=_optional_float(meta.get("finished_at")),
            outputs={node_id: json.loads(raw) for reply in stored_outputs for node_id, raw in reply.items()},
            unfinished=int(meta["unfinished"]),
            in_flight=int(meta["in_flight"]),
            failed_nodes=int(meta["failed"]),
        )
        return run

    async def read_data(self, run_id: str, roots: Collection[str]) -> dict[str, Any]:
        keys = self._keys.run(run_id)
        names = [root for root in roots if root != WORKFLOW_NAMESPACE]
        run_input = self._inputs.get(run_id)

        def add(pipe: Pipeline) -> None:
            pipe.hget(keys.meta, "status")
            if run_input is None:
                pipe.hget(keys.meta, "input")
            if names:
                pipe.hmget(keys.out, names)

        results = await self._coalescer.run(add)
        status = results.pop(0)
        if status is None:
            raise NotFound("workflow run", run_id)
        if status != RunStatus.RUNNING.value:
            raise RunNotActive(run_id, status)
        if run_input is None:
            run_input = results.pop(0)
            self._remember_input(run_id, run_input)
        data: dict[str, Any] = {}
        if WORKFLOW_NAMESPACE in roots:
            data[WORKFLOW_NAMESPACE] = {"input": json.loads(run_input)}
        if names:
            data.update((name, json.loads(raw)) for name, raw in zip(names, results[0], strict=True) if raw)
        return data

    def _remember_input(self, run_id: str, text: str) -> None:
        """Inputs never change: each of a run's tasks need not read it again."""
        if len(self._inputs) >= INPUT_CACHE_SIZE:
            del self._inputs[next(iter(self._inputs))]
        self._inputs[run_id] = text

    async def apply(self, events: Sequence[Event]) -> list[Command]:
        if not events:
            return []
        async with translated_errors(self._url):
            results = await self._run_transitions(events)
            if first_noscript(results):
                # Redis lost its script cache (a restart). Repeating the batch is harmless: the
                # script ignores events it has already applied.
                await self._transition.load(self._client)
                results = await self._run_transitions(events)
        commands: list[Command] = []
        for event, result in zip(events, results, strict=True):
            if isinstance(result, ResponseError):
                raise AdapterError(f"transition of run {event.run_id} failed: {result}")
            outcome, final = result
            if outcome == "unknown":
                log.warning("ignoring %s for unknown run %s", type(event).__name__, event.run_id)
            if final:
                commands.append(FinishRun(event.run_id, RunStatus(final)))
        return commands

    async def _run_transitions(self, events: Sequence[Event]) -> list[Any]:
        """One script call per shard for the whole batch; replies back in the events' order."""
        sha = self._transition.sha or await self._transition.load(self._client)
        by_shard: dict[int, list[int]] = {}
        for position, event in enumerate(events):
            by_shard.setdefault(self._keys.shard_of(event.run_id), []).append(position)
        pipe = self._client.pipeline(transaction=False)
        for number, positions in by_shard.items():
            shard = self._keys.shard(number)
            args: list[str] = [shard.run_prefix]
            for position in positions:
                event = events[position]
                kind, at, node_id, attempt, extra = _event_args(event)
                event_args = [kind, event.run_id, at, node_id, str(attempt), self._retention, *extra]
                args.append(str(len(event_args)))
                args.extend(event_args)
            keys = (shard.tasks, shard.timers, shard.graph_prefix, shard.run_index_prefix)
            pipe.evalsha(sha, len(keys), *keys, *args)
        replies = await pipe.execute(raise_on_error=False)
        results: list[Any] = [None] * len(events)
        for positions, reply in zip(by_shard.values(), replies, strict=True):
            for index, position in enumerate(positions):
                results[position] = (
                    reply if isinstance(reply, Exception) else reply[2 * index : 2 * index + 2]
                )
        return results

    async def history(self, run_id: str, after: int, limit: int) -> list[tuple[int, HistoryEntry]]:
        keys = self._keys.run(run_id)
        start = max(after, 0)
        async with translated_errors(self._url):
            pipe = self._client.pipeline(transaction=True)
            pipe.exists(keys.meta)
            pipe.lrange(keys.history, start, start + limit - 1)
            exists, raw = await pipe.execute()
        if not exists:
            raise NotFound("workflow run", run_id)
        return [(start + offset + 1, _history_entry(text)) for offset, text in enumerate(raw)]

    async def page(self, query: RunQuery) -> Page[RunSummary]:
        after = decode_cursor(query.cursor)
        statuses = [query.status] if query.status is not None else list(RunStatus)
        sources = [shard.run_index(status.value) for shard in self._keys.all_shards() for status in statuses]
        items: list[RunSummary] = []
        examined = 0
        async with translated_errors(self._url):
            while True:
                candidates = await self._next_runs(sources, after, query.limit + 1)
                summaries = await self._summaries([run_id for run_id, _ in candidates])
                for (run_id, created_at), summary in zip(candidates, summaries, strict=True):
                    if len(items) == query.limit or examined >= LIST_SCAN_BUDGET:
                        # More candidates remain: the page ends at the last one looked at.
                        return Page(items, encode_cursor(after) if after else None)
                    after = Position(created_at, run_id)
                    examined += 1
                    if summary is not None and _matches(summary, query):
                        items.append(summary)
                if len(candidates) <= query.limit:
                    return Page(items, None)

    async def _next_runs(
        self, sources: list[str], after: Position | None, count: int
    ) -> list[tuple[str, float]]:
        """The next ``count`` runs after ``after`` over all ``sources``, newest first."""
        merged: list[tuple[str, float]] = []
        for source in sources:
            merged.extend(await members_after(self._client, source, after, count))
        merged.sort(key=lambda pair: (pair[1], pair[0]), reverse=True)
        return merged[:count]

    async def _summaries(self, run_ids: list[str]) -> list[RunSummary | None]:
        pipe = self._client.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.hmget(self._keys.run(run_id).meta, _SUMMARY_FIELDS)
        replies = await pipe.execute()
        return [_summary(run_id, reply) for run_id, reply in zip(run_ids, replies, strict=True)]


def _pairs(flat: list[str]) -> dict[str, str]:
    """A hash as a script returns HGETALL: field, value, field, value ..."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _summary(run_id: str, fields: list[str | None]) -> RunSummary | None:
    status, definition_id, workflow, created_at, started_at, finished_at = fields
    if status is None or definition_id is None or created_at is None:
        return None  # expired since it was indexed
    return RunSummary(
        run_id,
        definition_id,
        workflow or "",
        RunStatus(status),
        float(created_at),
        _optional_float(started_at),
        _optional_float(finished_at),
    )


def _matches(summary: RunSummary, query: RunQuery) -> bool:
    """The index said so; the run may have moved on since."""
    return (query.status is None or summary.status is query.status) and (
        query.workflow is None or summary.workflow == query.workflow
    )


def _history_entry(text: str) -> HistoryEntry:
    """An entry as the transition script wrote it (times as strings, errors as pairs)."""
    document = json.loads(text)
    error = document.get("error")
    attempt = document.get("attempt")
    status = document.get("run_status")
    return HistoryEntry(
        kind=EntryKind(document["kind"]),
        at=float(document["at"]),
        node_id=document.get("node_id"),
        attempt=None if attempt is None else int(attempt),
        worker_id=document.get("worker_id") or None,
        error=None if error is None else ErrorInfo(error[0], error[1]),
        retry_at=_optional_float(document.get("retry_at")),
        dispatched=tuple(document.get("dispatched", ())),
        skipped=tuple(document.get("skipped", ())),
        run_status=None if status is None else RunStatus(status),
    )
