"""Scrapes of the engine processes' ``/metrics`` while a workload runs (``bench.redis_mode --metrics``).

Each engine process then serves Prometheus metrics on a loopback port of its own (``METRICS_PORT``),
which turns on its metered ports: the A/B of ``--metrics`` against a run without it is what counting
and serving metrics cost the hot path. During each workload a scraper process of its own (so that
the benchmark's own work, such as validating W4's definition, cannot delay a scrape) asks every
engine process in turn, as a Prometheus server would but far more often, and keeps how long each
scrape took from the request to the last byte: a scrape is answered by the engine process's event
loop, between the batches it decides. On SIGTERM it writes what it saw as one JSON document.

    python -m bench.metrics_scrapes OUT ROLE=PORT [ROLE=PORT ...]   (started by ``scraping``)
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from bench.processes import LOOPBACK, start_logged
from bench.stats import distribution_ms

SCRAPE_INTERVAL_SECONDS = 0.1
"""Between one round of scrapes (every process once) and the next."""
SCRAPE_TIMEOUT_SECONDS = 10.0
READY_TIMEOUT_SECONDS = 10.0


def summary(took: dict[str, list[float]], failed: list[str]) -> dict[str, Any]:
    """In ms: the distribution over every scrape and per process, and the first failures."""
    every = [seconds for values in took.values() for seconds in values]
    return {
        "all": distribution_ms(every),
        "by_process": {role: distribution_ms(values) for role, values in took.items()},
        "failed": len(failed),
        "first_failures": failed[:3],
    }


class _Stopped(Exception):
    pass


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


def _scrape(out: Path, ports: dict[str, int]) -> None:
    took: dict[str, list[float]] = {role: [] for role in ports}
    failed: list[str] = []
    signal.signal(signal.SIGTERM, _stop)
    try:
        with httpx.Client(timeout=SCRAPE_TIMEOUT_SECONDS) as client:
            for port in ports.values():  # unmeasured: connections open before the workload
                client.get(f"http://{LOOPBACK}:{port}/metrics").raise_for_status()
            print("scraping", flush=True)
            while True:
                for role, port in ports.items():
                    began = time.perf_counter()
                    try:
                        client.get(f"http://{LOOPBACK}:{port}/metrics").raise_for_status()
                    except httpx.HTTPError as error:
                        failed.append(f"{role}: {error!r}")
                        continue
                    took[role].append(time.perf_counter() - began)
                time.sleep(SCRAPE_INTERVAL_SECONDS)
    except _Stopped:
        pass
    out.write_text(json.dumps(summary(took, failed)))


@contextlib.contextmanager
def scraping(ports: dict[str, int], folder: Path) -> Iterator[dict[str, Any]]:
    """Scrape ``ports`` (role -> port) from a process of its own until the block ends; the dict
    yielded is filled with ``summary`` then (left empty when there are no ports)."""
    found: dict[str, Any] = {}
    if not ports:
        yield found
        return
    out = folder / "scrapes.json"
    out.unlink(missing_ok=True)
    command = [sys.executable, "-m", "bench.metrics_scrapes", str(out)]
    command += [f"{role}={port}" for role, port in ports.items()]
    project = Path(__file__).resolve().parent.parent
    scraper = start_logged(
        "metrics scraper", command, folder / "scraper.log", cwd=project, die_with_parent=True
    )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while "scraping" not in scraper.log():
            scraper.ensure_running()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the metrics scraper did not start:\n{scraper.tail()}")
            time.sleep(0.02)
        yield found
    finally:
        scraper.stop()
    if out.exists():
        found.update(json.loads(out.read_text()))


def main(argv: list[str]) -> None:
    out, *pairs = argv
    ports = {role: int(port) for role, port in (pair.split("=", 1) for pair in pairs)}
    _scrape(Path(out), ports)


if __name__ == "__main__":
    main(sys.argv[1:])
