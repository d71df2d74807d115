"""Attempt signals on Redis (``domain.ports.AttemptSignals``): one key per attempt to stop, beside
the run's keys (same hash tag: the run's shard holds it), expiring with the run's retention. A
worker holding attempts asks about them all in one pipelined round trip per poll."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from adapters.redis.connection import Redis, translated_errors
from adapters.redis.keys import KeySpace
from domain.ports import AttemptRef


class RedisAttemptSignals:
    def __init__(self, client: Redis, keys: KeySpace, url: str, retention_seconds: int) -> None:
        self._client = client
        self._keys = keys
        self._url = url
        self._retention = retention_seconds

    def _key(self, run_id: str, node_id: str, attempt: int) -> str:
        return self._keys.run(run_id).of_attempt("cancel", node_id, attempt)

    async def cancel(self, run_id: str, attempts: Sequence[tuple[str, int]]) -> None:
        if not attempts:
            return
        pipe = self._client.pipeline(transaction=False)
        for node_id, attempt in attempts:
            pipe.set(self._key(run_id, node_id, attempt), 1, ex=self._retention)
        async with translated_errors(self._url):
            await pipe.execute()

    async def cancelled(self, attempts: Collection[AttemptRef]) -> set[AttemptRef]:
        if not attempts:
            return set()
        asked = list(attempts)
        pipe = self._client.pipeline(transaction=False)
        for run_id, node_id, attempt in asked:
            pipe.exists(self._key(run_id, node_id, attempt))
        async with translated_errors(self._url):
            found = await pipe.execute()
        return {attempt for attempt, present in zip(asked, found, strict=True) if present}
