"""Live workers on Redis (``domain.ports.WorkerDirectory``): one key per worker holding what it
serves, with a TTL its heartbeat renews (``KeySpace.worker``), and a set of the ids that announced
(``KeySpace.workers``) to find them without a SCAN. A worker that dies stops renewing: its key
lapses by itself, and the next reader drops its id from the set."""

from __future__ import annotations

import json

from adapters.redis.connection import Redis, translated_errors
from adapters.redis.keys import KeySpace
from domain.ports import WorkerAnnouncement


class RedisWorkerDirectory:
    def __init__(self, client: Redis, keys: KeySpace, url: str) -> None:
        self._client = client
        self._keys = keys
        self._url = url

    async def announce(self, announcement: WorkerAnnouncement, ttl_seconds: float) -> None:
        record = {"queues": sorted(announcement.queues), "handlers": sorted(announcement.handlers)}
        pipe = self._client.pipeline(transaction=False)
        pipe.set(
            self._keys.worker(announcement.worker_id), json.dumps(record), px=max(1, int(ttl_seconds * 1000))
        )
        pipe.sadd(self._keys.workers, announcement.worker_id)
        async with translated_errors(self._url):
            await pipe.execute()

    async def withdraw(self, worker_id: str) -> None:
        pipe = self._client.pipeline(transaction=False)
        pipe.delete(self._keys.worker(worker_id))
        pipe.srem(self._keys.workers, worker_id)
        async with translated_errors(self._url):
            await pipe.execute()

    async def live(self) -> list[WorkerAnnouncement]:
        async with translated_errors(self._url):
            ids: list[str] = sorted(await self._client.smembers(self._keys.workers))  # type: ignore[arg-type]
            if not ids:
                return []
            pipe = self._client.pipeline(transaction=False)
            for worker_id in ids:
                pipe.get(self._keys.worker(worker_id))
            records = await pipe.execute()
            lapsed = [worker_id for worker_id, record in zip(ids, records, strict=True) if record is None]
            if lapsed:
                # A worker re-announcing at this moment adds itself back at its next heartbeat.
                await self._client.srem(self._keys.workers, *lapsed)
        live: list[WorkerAnnouncement] = []
        for worker_id, record in zip(ids, records, strict=True):
            if record is not None:
                fields = json.loads(record)
                live.append(
                    WorkerAnnouncement(worker_id, frozenset(fields["queues"]), frozenset(fields["handlers"]))
                )
        return live
