"""Runs in Redis (encoded by ``codec.runs``); every transition is decided by the domain and committed
atomically (``transitions``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any

from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

from adapters.errors import AdapterError
from adapters.redis.coalescer import Coalescer
from adapters.redis.codec import encode_event
from adapters.redis.codec.runs import (
    REVISION_FIELDS,
    STATUS,
    SUMMARY_FIELDS,
    StoredRun,
    decode_entry,
    decode_item,
    decode_output,
    decode_revision,
    decode_run,
    decode_summary,
    new_run_meta,
    stored_revision,
)
from adapters.redis.commit import Commit, CommitScript
from adapters.redis.connection import Redis, translated_errors
from adapters.redis.definitions import RedisDefinitionRepository
from adapters.redis.keys import KeySpace
from adapters.redis.pages import members_after
from adapters.redis.scripts import Script, add_call, run_scripts
from adapters.redis.transitions import RedisTransitions
from domain.errors import NotFound, RunAlreadyExists
from domain.events import Command, Event
from domain.history import HistoryEntry
from domain.map_spec import MapOutput, item_key
from domain.map_state import ItemRun
from domain.paging import Page, Position, decode_cursor, encode_cursor
from domain.plan import WorkflowPlan
from domain.ports import Delivery, RunQuery, RunSnapshot, RunSummary
from domain.run import Run, ensure_runnable
from domain.statuses import RunStatus
from domain.templates import WORKFLOW_NAMESPACE

log = logging.getLogger(__name__)

INPUT_CACHE_SIZE = 10_000
ITEMS_PER_READ = 10_000
# At most this many runs are looked at for one page of a filtered listing.
LIST_SCAN_BUDGET = 1_000


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
        self._coalescer = Coalescer.for_client(client, url)
        self._commit = CommitScript(client)
        self._read_script = Script("read_run")
        self._inputs: dict[str, str] = {}
        self._transitions = RedisTransitions(
            self._load, self._plan_of, self._read_staged, keys, self._commit, retention_seconds
        )

    async def add(self, run: Run) -> None:
        """One commit: the run's meta, its index entry and its ``RunStarted`` event. Its nodes are not
        written: a node absent from the nodes hash is in its initial state. A definition that Redis
        lost is stored again (the same pipeline checks that it is there)."""
        shard = self._keys.shard_for_run(run.run_id)
        commit = Commit()
        group = commit.group()
        meta = self._keys.run(run.run_id).meta
        group.require_equal(meta, STATUS, "")  # a new run id (an idempotent start is not repeated)
        group.hset(meta, new_run_meta(run))
        group.zadd(shard.run_index(RunStatus.PENDING.value), run.created_at, run.run_id)
        group.xadd(shard.events, encode_event(run.start_event()))
        keys, args = commit.call()
        definition_key = self._keys.definition(run.definition_id)
        async with translated_errors(self._url):
            (failed_check,), definition_stored = await self._call_script(
                self._commit.script, keys, args, also=lambda pipe: pipe.exists(definition_key)
            )
        if failed_check:
            raise RunAlreadyExists(run.run_id)
        if not definition_stored:
            await self._definitions.restore(run.definition_id)

    async def _call_script(
        self,
        script: Script,
        keys: Sequence[str],
        args: Sequence[str],
        also: Callable[[Pipeline], object] | None = None,
    ) -> Any:
        """Coalesced with the other calls of this loop iteration (concurrent API requests); with
        ``also``, the replies of the script and of the commands ``also`` adds."""
        sha = script.sha or await script.load(self._client)
        try:
            return await self._evalsha(sha, keys, args, also)
        except AdapterError as error:
            if not isinstance(error.__cause__, NoScriptError):
                raise
        # Redis forgot its scripts (a restart): load and call again (nothing was run).
        return await self._evalsha(await script.load(self._client), keys, args, also)

    async def _evalsha(
        self, sha: str, keys: Sequence[str], args: Sequence[str], also: Callable[[Pipeline], object] | None
    ) -> Any:
        def add(pipe: Pipeline) -> None:
            add_call(pipe, sha, keys, args)
            if also is not None:
                also(pipe)

        replies = await self._coalescer.run(add)
        return replies if also is not None else replies[0]

    async def get(self, run_id: str, *, outputs: bool = True) -> Run:
        return (await self._read(run_id, outputs)).run

    async def snapshot(self, run_id: str, *, outputs: bool = True) -> RunSnapshot:
        """The revision comes from the meta hash the same script read."""
        stored = await self._read(run_id, outputs)
        return RunSnapshot(stored.run, stored_revision(stored))

    async def revision(self, run_id: str) -> str:
        """One HMGET of two meta fields (coalesced with this loop iteration's other calls); the
        version is the one every commit of the run checks and increments (``transitions``)."""
        meta = self._keys.run(run_id).meta

        def add(pipe: Pipeline) -> None:
            pipe.hmget(meta, REVISION_FIELDS)

        async with translated_errors(self._url):
            (fields,) = await self._coalescer.run(add)
        revision = decode_revision(fields)
        if revision is None:
            raise NotFound("workflow run", run_id)
        return revision

    async def status(self, run_id: str) -> RunStatus:
        """One HGET of the meta hash's status (coalesced with this loop iteration's other calls)."""
        meta = self._keys.run(run_id).meta

        def add(pipe: Pipeline) -> None:
            pipe.hget(meta, STATUS)

        async with translated_errors(self._url):
            (status,) = await self._coalescer.run(add)
        if status is None:
            raise NotFound("workflow run", run_id)
        return RunStatus(status)

    async def _read(self, run_id: str, outputs: bool) -> StoredRun:
        keys = self._keys.run(run_id)
        wanted = (keys.meta, keys.nodes, keys.out) if outputs else (keys.meta, keys.nodes)
        async with translated_errors(self._url):
            replies = await self._call_script(self._read_script, wanted, ())
        stored = await self._decode(run_id, replies)
        if stored is None:
            raise NotFound("workflow run", run_id)
        return stored

    async def _load(self, run_ids: list[str]) -> list[StoredRun]:
        """The runs (without input and outputs: what deciding needs) that exist among ``run_ids``, each
        a consistent snapshot."""
        calls = []
        for run_id in run_ids:
            keys = self._keys.run(run_id)
            calls.append(((keys.meta, keys.nodes), ()))
        async with translated_errors(self._url):
            replies = await run_scripts(self._client, self._read_script, calls)
        loaded = []
        for run_id, reply in zip(run_ids, replies, strict=True):
            if isinstance(reply, Exception):
                raise AdapterError(f"reading run {run_id} failed: {reply}") from reply
            try:
                stored = await self._decode(run_id, reply, with_input=False)
            except NotFound as error:
                # Lost with Redis's data: the run cannot go on until it is restored.
                raise AdapterError(f"run {run_id} cannot be applied to: {error}") from error
            if stored is not None:
                loaded.append(stored)
        await self._read_decision_data(
            [
                stored.run
                for stored in loaded
                if stored.run.plan.decision_reads or _maps_input(stored.run.plan)
            ]
        )
        return loaded

    async def _read_decision_data(self, runs: list[Run]) -> None:
        """Give each run the outputs (and input) its own decisions read: its conditions and output
        mapping (``WorkflowPlan.decision_reads``). One round trip for all of them."""
        if not runs:
            return
        wanted = [sorted(run.plan.decision_reads - {WORKFLOW_NAMESPACE}) for run in runs]

        def add(pipe: Pipeline) -> None:
            for run, names in zip(runs, wanted, strict=True):
                keys = self._keys.run(run.run_id)
                pipe.hget(keys.meta, "input")
                if names:
                    pipe.hmget(keys.out, names)

        async with translated_errors(self._url):
            results = iter(await self._coalescer.run(add))
        for run, names in zip(runs, wanted, strict=True):
            raw_input = next(results)
            run.input = json.loads(raw_input) if raw_input else {}
            if names:
                found = zip(names, next(results), strict=True)
                run.outputs.update((name, decode_output(raw)) for name, raw in found if raw is not None)

    async def _read_staged(self, fields: list[tuple[str, str]]) -> list[str | None]:
        """The staged outputs (run id, staged field) a decision needs before it is made."""

        def add(pipe: Pipeline) -> None:
            for run_id, field_name in fields:
                pipe.hget(self._keys.run(run_id).staged, field_name)

        async with translated_errors(self._url):
            return list(await self._coalescer.run(add))

    async def _plan_of(self, definition_id: str) -> WorkflowPlan | None:
        try:
            return (await self._definitions.get(definition_id)).plan
        except NotFound:
            return None  # the run is read instead (and its definition looked for again)

    async def _decode(
        self, run_id: str, replies: list[list[str]], *, with_input: bool = True
    ) -> StoredRun | None:
        meta, nodes, *outputs = [_pairs(reply) for reply in replies]
        if not meta:
            return None
        plan = (await self._definitions.get(meta["definition_id"])).plan
        return decode_run(run_id, meta, nodes, outputs[0] if outputs else {}, plan, with_input=with_input)

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
        ensure_runnable(run_id, RunStatus(status))
        if run_input is None:
            run_input = results.pop(0)
            self._remember_input(run_id, run_input)
        data: dict[str, Any] = {}
        if WORKFLOW_NAMESPACE in roots:
            data[WORKFLOW_NAMESPACE] = {"input": json.loads(run_input)}
        if names:
            data.update(
                (name, decode_output(raw)) for name, raw in zip(names, results[0], strict=True) if raw
            )
            for name, value in data.items():
                if type(value) is MapOutput:
                    data[name] = await self.item_outputs(run_id, name, 0, value.count)
        return data

    async def item_records(self, run_id: str, node_id: str, start: int, stop: int) -> dict[int, ItemRun]:
        if stop <= start:
            return {}
        names = [item_key(node_id, item) for item in range(start, stop)]
        async with translated_errors(self._url):
            found = await self._client.hmget(self._keys.run(run_id).items, names)
        return {
            item: decode_item(str(raw)) for item, raw in zip(range(start, stop), found, strict=True) if raw
        }

    async def item_outputs(self, run_id: str, node_id: str, start: int, stop: int) -> list[Any]:
        """Read in slices: one command never carries more than ``ITEMS_PER_READ`` outputs."""
        key = self._keys.run(run_id).item_out
        outputs: list[Any] = []
        for first in range(start, stop, ITEMS_PER_READ):
            names = [item_key(node_id, item) for item in range(first, min(first + ITEMS_PER_READ, stop))]
            async with translated_errors(self._url):
                found = await self._client.hmget(key, names)
            outputs.extend(None if raw is None else json.loads(raw) for raw in found)
        return outputs

    def _remember_input(self, run_id: str, text: str) -> None:
        """Inputs never change: each of a run's tasks need not read it again."""
        if len(self._inputs) >= INPUT_CACHE_SIZE:
            del self._inputs[next(iter(self._inputs))]
        self._inputs[run_id] = text

    async def apply(
        self, events: Sequence[Event], delivered: Sequence[Delivery[Event]] = ()
    ) -> list[Command]:
        """Each run's events are acknowledged by the commit of their effect (``delivered``)."""
        if not events:
            return []
        async with translated_errors(self._url):
            return await self._transitions.apply(events, delivered)

    async def history(self, run_id: str, after: int, limit: int) -> list[tuple[int, HistoryEntry]]:
        keys = self._keys.run(run_id)
        start = max(after, 0)

        def add(pipe: Pipeline) -> None:
            pipe.exists(keys.meta)
            pipe.lrange(keys.history, start, start + limit - 1)

        # Coalesced: the event streams of many runs, woken by one commit each, read in one pipeline.
        async with translated_errors(self._url):
            exists, raw = await self._coalescer.run(add)
        if not exists:
            raise NotFound("workflow run", run_id)
        return [(start + offset + 1, decode_entry(text)) for offset, text in enumerate(raw)]

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
            pipe.hmget(self._keys.run(run_id).meta, SUMMARY_FIELDS)
        replies = await pipe.execute()
        return [decode_summary(run_id, reply) for run_id, reply in zip(run_ids, replies, strict=True)]


def _maps_input(plan: WorkflowPlan) -> bool:
    return WORKFLOW_NAMESPACE in plan.map_sources


def _pairs(flat: list[str]) -> dict[str, str]:
    """A hash as a script returns HGETALL: field, value, field, value ..."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _matches(summary: RunSummary, query: RunQuery) -> bool:
    """The index said so; the run may have moved on since."""
    return (query.status is None or summary.status is query.status) and (
        query.workflow is None or summary.workflow == query.workflow
    )
