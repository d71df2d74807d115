"""Typed, read-only views of what the engine keeps in Redis, for tests and benchmarks.

They look at the store behind the ports (to assert on final state, or to measure) on a synchronous
client, and decode everything through ``codec``: nobody outside this package reads raw keys or short
field names.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis
import redis.asyncio

from adapters.redis.codec.definitions import decode_document
from adapters.redis.codec.leases import lease_holder
from adapters.redis.codec.runs import (
    STATUS,
    SUMMARY_FIELDS,
    decode_entry,
    decode_output,
    decode_run,
    decode_summary,
)
from adapters.redis.keys import KeySpace
from domain.history import HistoryEntry
from domain.plan import WorkflowPlan
from domain.ports import RunSummary
from domain.run import Run
from domain.statuses import RunStatus


def add_run_reads(pipe: Any, keys: KeySpace, run_ids: list[str]) -> None:
    """What ``decode_runs`` decodes: meta, nodes and outputs of each run (a sync or async pipeline)."""
    for run_id in run_ids:
        run_keys = keys.run(run_id)
        pipe.hgetall(run_keys.meta)
        pipe.hgetall(run_keys.nodes)
        pipe.hgetall(run_keys.out)


class RedisInspector:
    """On a ``redis.Redis`` client created with ``decode_responses=True``."""

    def __init__(self, client: redis.Redis, keys: KeySpace) -> None:
        # redis-py types the replies of a sync client as bytes | str; decode_responses makes them str.
        self._client: Any = client
        self._keys = keys
        self._plans: dict[str, WorkflowPlan] = {}

    def statuses(self, run_ids: Iterable[str]) -> dict[str, RunStatus | None]:
        """Each run's status (None for a run not stored), in one round trip."""
        run_ids = list(run_ids)
        pipe = self._client.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.hget(self._keys.run(run_id).meta, STATUS)
        return {
            run_id: None if status is None else RunStatus(status)
            for run_id, status in zip(run_ids, pipe.execute(), strict=True)
        }

    def run(self, run_id: str) -> Run | None:
        """The run as stored, outputs included; None when it is not stored."""
        return self.runs([run_id])[0]

    def runs(self, run_ids: Iterable[str]) -> list[Run | None]:
        """Several runs in one round trip, each a consistent snapshot (on a cluster, where runs lie
        in several slots, read one after the other: for final states)."""
        run_ids = list(run_ids)
        pipe = self._client.pipeline(transaction=not isinstance(self._client, redis.RedisCluster))
        add_run_reads(pipe, self._keys, run_ids)
        return self.decode_runs(run_ids, pipe.execute())

    def decode_runs(self, run_ids: list[str], replies: list[Any]) -> list[Run | None]:
        """Runs from the replies of HGETALL meta, nodes and out, per run."""
        runs: list[Run | None] = []
        for position, run_id in enumerate(run_ids):
            meta, nodes, outputs = replies[3 * position : 3 * position + 3]
            if not meta:
                runs.append(None)
                continue
            plan = self._plan(meta["definition_id"])
            runs.append(decode_run(run_id, meta, nodes, outputs, plan).run)
        return runs

    def history(self, run_id: str) -> list[HistoryEntry]:
        return [decode_entry(raw) for raw in self._client.lrange(self._keys.run(run_id).history, 0, -1)]

    def staged(self, run_id: str) -> dict[str, Any]:
        """Large outputs workers reported that no transition has accepted yet, by (node, attempt)."""
        raw: dict[str, str] = self._client.hgetall(self._keys.run(run_id).staged)
        return {field: decode_output(value) for field, value in raw.items()}

    def lease_holders(self) -> dict[int, str]:
        """Shard number -> the orchestrator (consumer name) holding its lease, for shards held."""
        pipe = self._client.pipeline(transaction=False)
        for shard in self._keys.all_shards():
            pipe.get(shard.lease)
        values = pipe.execute()
        return {number: lease_holder(value) for number, value in enumerate(values) if value is not None}

    def _plan(self, definition_id: str) -> WorkflowPlan:
        plan = self._plans.get(definition_id)
        if plan is None:
            raw = self._client.get(self._keys.definition(definition_id))
            if raw is None:
                raise LookupError(f"definition {definition_id} is not stored")
            plan = self._plans[definition_id] = decode_document(definition_id, str(raw)).plan
        return plan


class AsyncRedisInspector:
    """The reads a benchmark makes while it runs, on the engine's asyncio client: cheap polling of
    many runs' summaries, then whole runs (their plan from a ``RedisInspector``'s definitions)."""

    def __init__(self, client: redis.asyncio.Redis, keys: KeySpace, plans: RedisInspector) -> None:
        self._client: Any = client
        self._keys = keys
        self._plans = plans

    async def summaries(self, run_ids: Iterable[str]) -> dict[str, RunSummary | None]:
        run_ids = list(run_ids)
        pipe = self._client.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.hmget(self._keys.run(run_id).meta, SUMMARY_FIELDS)
        replies = await pipe.execute()
        return {run_id: decode_summary(run_id, reply) for run_id, reply in zip(run_ids, replies, strict=True)}

    async def runs(self, run_ids: Iterable[str]) -> list[Run | None]:
        run_ids = list(run_ids)
        pipe = self._client.pipeline(transaction=not isinstance(self._client, redis.asyncio.RedisCluster))
        add_run_reads(pipe, self._keys, run_ids)
        return self._plans.decode_runs(run_ids, await pipe.execute())
