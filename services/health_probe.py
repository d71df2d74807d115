"""``python -m services.health_probe``: exit 0 if Redis answers, 3 if not (container health checks).

``dag-service check`` answers the same question, but imports the whole command line, the API and the
adapters to do it: about 3 s of CPU per check, which on a shared 2-core machine running the compose
stack with four workers took 20-30 s and overran the checks' 10 s timeout, so that healthy containers
were reported unhealthy. This imports the settings and the Redis client alone (about a fifth of that).
"""

from __future__ import annotations

import sys

import redis
from redis.cluster import RedisCluster
from redis.sentinel import Sentinel

from services.settings import Settings

EXIT_UNAVAILABLE = 3  # dag-service check's code for a backend that does not answer


def _client(settings: Settings) -> redis.Redis:
    """A client of the backend as the engine reaches it: the server, the cluster (any node answers
    for it) or the master the sentinels name."""
    timeouts: dict[str, float] = {"socket_connect_timeout": 5, "socket_timeout": 5}
    if settings.redis_sentinels:
        sentinels = Sentinel(list(settings.sentinel_addresses()), **timeouts)  # type: ignore[no-untyped-call]
        master: redis.Redis = sentinels.master_for(settings.redis_sentinel_master, **timeouts)  # type: ignore[no-untyped-call]
        return master
    if settings.redis_cluster:
        return RedisCluster.from_url(settings.redis_location(), **timeouts)  # type: ignore[return-value]
    return redis.Redis.from_url(settings.redis_location(), **timeouts)


def probe() -> int:
    try:
        client = _client(Settings())
    except redis.RedisError as error:  # a cluster client asks for the slots as it is made
        sys.stderr.write(f"error: Redis does not answer: {error}\n")
        return EXIT_UNAVAILABLE
    try:
        client.ping()
    except redis.RedisError as error:
        sys.stderr.write(f"error: Redis does not answer: {error}\n")
        return EXIT_UNAVAILABLE
    finally:
        client.close()
    sys.stdout.write("ok: redis backend answers\n")
    return 0


if __name__ == "__main__":
    sys.exit(probe())
