"""Which orchestrator reads which shard's events: leases, renewed while their holder lives.

Orchestrators share the shards: each one's fair share is ``ceil(shards / live orchestrators)``, a
live orchestrator being one that renewed its membership within the lease time. Each holds the leases
of its share and reads only those shards' event streams, so one orchestrator applies the events of a
run and its cached state of the run stays current; a lease lapses when its holder dies (or is paused
past it) and another takes the shard over, with the entries its holder had left pending.

Leases decide who reads, not what may be written: a commit checks the version of each run it writes
(``transitions``), so two orchestrators that both believe they hold a shard (one paused past its
lease, say) stay correct; they only decide again what the other changed first.
"""

from __future__ import annotations

import logging
import math
import secrets
import time

from adapters.redis.codec.leases import encode_lease
from adapters.redis.connection import Redis, translated_errors
from adapters.redis.keys import KeySpace
from adapters.redis.scripts import Script, run_scripts

log = logging.getLogger(__name__)

RENEW_INTERVAL_SECONDS = 3.0
"""At most this long between two renewals (a third of the lease when that is shorter)."""


class ShardLeases:
    """The leases one orchestrator (``holder``) holds, and when to renew them."""

    def __init__(self, client: Redis, url: str, keys: KeySpace, lease_seconds: float) -> None:
        self._client = client
        self._url = url
        self._keys = keys
        self._lease_ms = max(int(lease_seconds * 1000), 1)
        self._interval = min(lease_seconds / 3, RENEW_INTERVAL_SECONDS)
        self._script = Script("lease")
        self._held: dict[int, str] = {}
        """Shard number -> the value of its lease key while this orchestrator holds it."""
        self._next_renewal = 0.0
        self._holder: str | None = None

    @property
    def held(self) -> list[int]:
        return sorted(self._held)

    def seconds_to_renewal(self) -> float:
        return max(self._next_renewal - time.monotonic(), 0.0)

    async def renew(self, holder: str) -> list[int]:
        """When due: renew membership and leases, give back what is over the fair share, take free
        shards up to it. Returns the shards newly taken (their pending entries are to be taken over)."""
        if time.monotonic() < self._next_renewal:
            return []
        self._holder = holder
        self._next_renewal = time.monotonic() + self._interval
        async with translated_errors(self._url):
            share = await self._fair_share(holder)
            await self._keep(share)
            return await self._take(holder, share)

    async def release(self) -> None:
        """Give every lease back at once (a graceful stop): others need not wait for them to lapse."""
        if not self._held:
            return
        async with translated_errors(self._url):
            await self._call([("release", shard, value) for shard, value in self._held.items()])
            if self._holder is not None:
                await self._client.zrem(self._keys.orchestrators, self._holder)
        log.info("released the leases of shards %s", self.held)
        self._held.clear()

    async def _fair_share(self, holder: str) -> int:
        now_ms = int(time.time() * 1000)
        pipe = self._client.pipeline(transaction=False)
        pipe.zadd(self._keys.orchestrators, {holder: now_ms + self._lease_ms})
        pipe.zremrangebyscore(self._keys.orchestrators, "-inf", now_ms)
        pipe.zcard(self._keys.orchestrators)
        *_, live = await pipe.execute()
        return math.ceil(self._keys.shards / max(int(live), 1))

    async def _keep(self, share: int) -> None:
        """Renew what is held; give back the highest-numbered shards over the share."""
        over = sorted(self._held)[share:]
        calls = [("renew", shard, value) for shard, value in self._held.items() if shard not in over]
        calls += [("release", shard, self._held[shard]) for shard in over]
        for (operation, shard, _), kept in zip(calls, await self._call(calls), strict=True):
            if operation == "release" or not kept:
                del self._held[shard]
                if operation == "renew":
                    log.warning("lost the lease of shard %d (it lapsed): another orchestrator took it", shard)
        if over:
            log.info("gave back shards %s (fair share %d)", over, share)

    async def _take(self, holder: str, share: int) -> list[int]:
        """Free shards up to the share, one at a time, from a random one on (so that orchestrators
        starting together seldom try the same shards)."""
        shards = self._keys.shards
        start = secrets.randbelow(shards)
        candidates = [(start + n) % shards for n in range(shards)]
        taken: list[int] = []
        for shard in candidates:
            if len(self._held) >= share:
                break
            if shard in self._held:
                continue
            value = encode_lease(holder)
            if (await self._call([("acquire", shard, value)]))[0]:
                self._held[shard] = value
                taken.append(shard)
        if taken:
            log.info("took the leases of shards %s (fair share %d)", taken, share)
        return taken

    async def _call(self, calls: list[tuple[str, int, str]]) -> list[bool]:
        """The lease script per (operation, shard, lease value), in one pipeline."""
        if not calls:
            return []
        script_calls = [
            ((self._keys.shard(shard).lease,), (operation, value, str(self._lease_ms)))
            for operation, shard, value in calls
        ]
        replies = await run_scripts(self._client, self._script, script_calls)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return [bool(reply) for reply in replies]
