"""Per-attempt logs on Redis (``domain.ports.AttemptLogStore``): one list per attempt, beside the
run's keys (same hash tag, so the run's shard holds it), expiring with the run's retention."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.redis.commit import Commit, CommitScript
from adapters.redis.connection import Redis, translated_errors
from adapters.redis.keys import KeySpace
from domain.attempt_logs import MAX_LINES


class RedisAttemptLogStore:
    def __init__(self, client: Redis, keys: KeySpace, url: str, retention_seconds: int) -> None:
        self._client = client
        self._keys = keys
        self._url = url
        self._retention = retention_seconds
        self._commit = CommitScript(client)

    def _key(self, run_id: str, node_id: str, attempt: int) -> str:
        return self._keys.run(run_id).of_attempt("log", node_id, attempt)

    async def append(self, run_id: str, node_id: str, attempt: int, lines: Sequence[str]) -> None:
        if not lines:
            return
        key = self._key(run_id, node_id, attempt)
        commit = Commit()
        group = commit.group()
        group.rpush(key, lines[:MAX_LINES])
        group.ltrim(key, 0, MAX_LINES - 1)  # keeps the first lines: later ones are dropped
        group.expire(key, self._retention)
        async with translated_errors(self._url):
            await self._commit.one(commit)

    async def read(self, run_id: str, node_id: str, attempt: int) -> list[str]:
        async with translated_errors(self._url):
            lines = await self._client.lrange(self._key(run_id, node_id, attempt), 0, MAX_LINES - 1)
        return [str(line) for line in lines]
