"""Live workers in this process (``domain.ports.WorkerDirectory``): the embedded backend's workers
share the API's process, so a dict of announcements with their expiry is the directory."""

from __future__ import annotations

from collections.abc import Callable

from domain.ports import WorkerAnnouncement


class InMemoryWorkerDirectory:
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._live: dict[str, tuple[WorkerAnnouncement, float]] = {}

    async def announce(self, announcement: WorkerAnnouncement, ttl_seconds: float) -> None:
        self._live[announcement.worker_id] = (announcement, self._now() + ttl_seconds)

    async def withdraw(self, worker_id: str) -> None:
        self._live.pop(worker_id, None)

    async def live(self) -> list[WorkerAnnouncement]:
        now = self._now()
        for worker_id in [w for w, (_, lapses) in self._live.items() if lapses <= now]:
            del self._live[worker_id]
        return [announcement for _, (announcement, _) in sorted(self._live.items())]
