"""Scrapes of the engine processes' ``/metrics`` while a workload runs (``bench.redis_mode --metrics``).

Each engine process then serves Prometheus metrics on a loopback port of its own (``METRICS_PORT``),
which turns on its metered ports: the A/B of ``--metrics`` against a run without it is what counting
and serving metrics cost the hot path. During each workload this scrapes every process in turn, as a
Prometheus server would but far more often, and keeps how long each scrape took from the request to
the last byte: a scrape is answered by the process's own event loop, between the batches it decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.processes import LOOPBACK
from bench.stats import distribution_ms

SCRAPE_INTERVAL_SECONDS = 0.1
"""Between one round of scrapes (every process once) and the next."""
SCRAPE_TIMEOUT_SECONDS = 10.0


@dataclass
class Scrapes:
    """How long each scrape took, in seconds, per process; scrapes that failed, with why."""

    took: dict[str, list[float]] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """In ms: the distribution over every scrape and per process, and the first failures."""
        every = [seconds for values in self.took.values() for seconds in values]
        return {
            "all": distribution_ms(every),
            "by_process": {role: distribution_ms(values) for role, values in self.took.items()},
            "failed": len(self.failed),
            "first_failures": self.failed[:3],
        }


async def _scrape_forever(ports: dict[str, int], scrapes: Scrapes) -> None:
    async with httpx.AsyncClient(timeout=SCRAPE_TIMEOUT_SECONDS) as client:
        while True:
            for role, port in ports.items():
                began = time.perf_counter()
                try:
                    answer = await client.get(f"http://{LOOPBACK}:{port}/metrics")
                    answer.raise_for_status()
                except httpx.HTTPError as error:
                    scrapes.failed.append(f"{role}: {error!r}")
                    continue
                scrapes.took.setdefault(role, []).append(time.perf_counter() - began)
            await asyncio.sleep(SCRAPE_INTERVAL_SECONDS)


@contextlib.asynccontextmanager
async def scraping(ports: dict[str, int]) -> AsyncIterator[Scrapes | None]:
    """Scrape ``ports`` (role -> port) until the block ends; None (no scraping) when there are none."""
    if not ports:
        yield None
        return
    scrapes = Scrapes()
    task = asyncio.create_task(_scrape_forever(ports, scrapes))
    try:
        yield scrapes
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
