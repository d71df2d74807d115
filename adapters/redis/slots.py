"""Concurrency slots in Redis, shared by every worker (``lua/slots.lua``)."""

from __future__ import annotations

from adapters.redis.commit import Commit, CommitScript
from adapters.redis.connection import Redis, translated_errors
from adapters.redis.keys import KeySpace
from adapters.redis.scripts import Script, with_script


class RedisConcurrencySlots:
    """``domain.ports.ConcurrencySlots`` on Redis: per key, sorted sets of holders (by lease end)
    and of waiters (by when they first asked, and by when their place lapses), one hash tag."""

    def __init__(self, client: Redis, keys: KeySpace, url: str) -> None:
        self._client = client
        self._keys = keys
        self._url = url
        self._script = Script("slots")
        self._commit = CommitScript(client)

    async def acquire(self, key: str, holder: str, limit: int, now: float, lease_seconds: float) -> bool:
        names = self._keys.slots(key)
        arguments = (holder, str(limit), repr(now), repr(lease_seconds))
        async with translated_errors(self._url):
            reply = await with_script(
                self._client, self._script, lambda sha: self._client.evalsha(sha, 3, *names, *arguments)
            )
        return bool(int(reply))

    async def renew(self, key: str, holder: str, now: float, lease_seconds: float) -> None:
        holders = self._keys.slots(key)[0]
        async with translated_errors(self._url):
            await self._client.zadd(holders, {holder: now + lease_seconds}, xx=True)

    async def release(self, key: str, holder: str) -> None:
        holders, line, seen = self._keys.slots(key)
        commit = Commit()
        group = commit.group()
        for name in (holders, line, seen):
            group.zrem(name, holder)
        async with translated_errors(self._url):
            await self._commit.one(commit)

    async def holders(self, key: str, now: float) -> int:
        holders = self._keys.slots(key)[0]
        async with translated_errors(self._url):
            return int(await self._client.zcount(holders, f"({now!r}", "+inf"))
