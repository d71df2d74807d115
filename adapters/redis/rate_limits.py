"""Token buckets in Redis, shared by every API process (``lua/rate_limit.lua``)."""

from __future__ import annotations

from adapters.redis.connection import Redis, translated_errors
from adapters.redis.keys import KeySpace
from adapters.redis.scripts import Script, with_script


class RedisRateLimiter:
    """``domain.ports.RateLimiter`` on Redis: a hash per key, expiring once it would be full again."""

    def __init__(self, client: Redis, keys: KeySpace, url: str, rate: float, burst: int) -> None:
        self._client = client
        self._keys = keys
        self._url = url
        self._rate = rate
        self._burst = burst
        self._script = Script("rate_limit")

    async def take(self, key: str, now: float) -> float:
        bucket = self._keys.rate_bucket(key)
        arguments = (repr(now), repr(self._rate), str(self._burst))
        async with translated_errors(self._url):
            reply = await with_script(
                self._client,
                self._script,
                lambda sha: self._client.evalsha(sha, 1, bucket, *arguments),
            )
        return float(reply)
