"""What one status read of a big run costs the API, A/B against another checkout.

A run of ``bench.dags.layered_dag(--nodes)`` (20,000 by default) is stored in a redis-server of the
benchmark's own (loopback, no persistence) and brought half-way (its first layer started, half of
it completed, their children queued), as a poller sees a big run. The API app
(``services.api.create_app``) is called in process through ASGI directly (no HTTP client, no
socket: what is measured is the app's own work and its Redis round trips). Three kinds of read of
each status route (the seed's ``GET /api/workflows/{id}`` and ``GET /api/runs/{id}``):

- **changed**: one commit is made to the run before each read (a heartbeat of a running node,
  outside the timing): the answer must be built again;
- **unchanged**: the run as at the previous read;
- **If-None-Match**: as unchanged, the request naming the previous answer's ``ETag`` (a checkout
  whose answers carry none is read plainly: the figure is then the unchanged one's).

Per kind: wall time per read and this process's CPU per read (``time.process_time``), median and
range of the rounds' medians. Each measurement is a fresh process whose code (``domain``,
``adapters``, ``services``) comes from the checkout measured, the measuring code being this file's
for both sides; the rounds alternate this checkout (A) and the baseline (B), switching which goes
first each round, so that both see the same machine load.

    uv run python -m bench.status_reads                                 # A only
    uv run python -m bench.status_reads --baseline /tmp/main-export --rounds 3
    uv run python -m bench.status_reads --one                           # one child, its JSON

Exit 2 when redis-server is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from dependency_injector import providers

# In a measurement, these come from the checkout measured (its folder is first on PYTHONPATH).
from bench.dags import DEFAULT_WIDTH, layered_dag
from bench.processes import RedisServer
from domain.events import HeartbeatReceived, NodeStarted, NodeSucceeded, RunStarted
from services.api import create_app
from services.container import Container, close_backend, open_backend
from services.settings import Settings

HERE = Path(__file__).resolve().parents[1]
SEED = 7
KINDS = ("changed", "unchanged", "if-none-match")
ROUTES = {"seed": "/api/workflows/{}", "runs": "/api/runs/{}"}


# -- the child: one checkout's figures ---------------------------------------------------------------


class AsgiClient:
    """GET requests straight into an ASGI app: the app's work, without a client's or a socket's."""

    def __init__(self, app: Any) -> None:
        self._app = app

    async def get(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        sent: list[dict[str, Any]] = []
        answered = asyncio.Event()
        first = True

        async def receive() -> dict[str, Any]:
            nonlocal first
            if first:
                first = False
                return {"type": "http.request", "body": b"", "more_body": False}
            await answered.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                answered.set()

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"bench"), *((k.encode(), v.encode()) for k, v in headers.items())],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
            "state": {},
        }
        await self._app(scope, receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        answer_headers = {k.decode(): v.decode() for k, v in start["headers"]}
        return start["status"], answer_headers, body


async def _half_way(container: Any, nodes: int) -> tuple[str, Callable[[], Awaitable[None]]]:
    """A run of ``nodes`` nodes with its first layer started and half of it completed; and a commit
    that changes it (a heartbeat of a running node, later each time)."""
    service = container.workflows()
    runs = container.runs()
    stored = await service.register(layered_dag(nodes, SEED))
    run = await service.start(stored.definition_id, {})
    at = time.time()
    roots = [f"n{i}" for i in range(min(DEFAULT_WIDTH, nodes))]
    await runs.apply([RunStarted(run.run_id, at, stored.definition_id)])
    await runs.apply([NodeStarted(run.run_id, node, 1, "bench-worker", at) for node in roots])
    done = roots[: len(roots) // 2]
    await runs.apply([NodeSucceeded(run.run_id, node, 1, {"ok": True}, at + 1) for node in done])
    beating, beats = roots[-1], [0]

    async def commit() -> None:
        beats[0] += 1
        await runs.apply([HeartbeatReceived(run.run_id, beating, 1, at + 2 + beats[0] / 1000)])

    return run.run_id, commit


async def _measure(route: str, kind: str, client: AsgiClient, commit: Any, reads: int) -> dict[str, Any]:
    walls: list[float] = []
    cpus: list[float] = []
    etag: str | None = None
    statuses: set[int] = set()
    size = 0
    for index in range(reads + 2):  # the first two warm up (and give the tag)
        if kind == "changed":
            await commit()
        headers = {"if-none-match": etag} if kind == "if-none-match" and etag else {}
        cpu, wall = time.process_time(), time.perf_counter()
        status, answer_headers, body = await client.get(route, headers)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        etag = answer_headers.get("etag", etag)
        if status == 200:
            size = len(body)
        if index >= 2:
            walls.append(wall)
            cpus.append(cpu)
            statuses.add(status)
    return {
        "wall_ms": statistics.median(walls) * 1000,
        "cpu_ms": statistics.median(cpus) * 1000,
        "statuses": sorted(statuses),
        "bytes": size,
        "etag": etag is not None,
    }


async def child(nodes: int, reads: int, changed_reads: int) -> dict[str, Any]:
    binary = shutil.which("redis-server")
    assert binary is not None
    with tempfile.TemporaryDirectory(prefix="status-reads-") as folder:
        server = RedisServer(binary, Path(folder), appendfsync=None, die_with_parent=True).start()
        try:
            container = Container()
            container.backend.override("redis")
            settings = Settings(redis_url=server.url, redis_key_prefix=f"bench-{uuid.uuid4().hex[:8]}")
            container.settings.override(providers.Object(settings))
            await open_backend(container)
            try:
                run_id, commit = await _half_way(container, nodes)
                client = AsgiClient(create_app(container.workflows, Settings(api_str="/api")))
                figures: dict[str, Any] = {
                    "code": str(Path(sys.modules[create_app.__module__].__file__ or "?"))
                }
                for name, route in ROUTES.items():
                    for kind in KINDS:
                        count = changed_reads if kind == "changed" else reads
                        figures[f"{name} {kind}"] = await _measure(
                            route.format(run_id), kind, client, commit, count
                        )
                return figures
            finally:
                await close_backend(container)
        finally:
            server.stop()


def measure_in(checkout: Path, nodes: int, reads: int, changed_reads: int) -> dict[str, Any]:
    """One fresh process whose engine code comes from ``checkout``, running this file's ``child``."""
    environment = {**os.environ, "PYTHONPATH": str(checkout)}
    arguments = ["--one", "--nodes", str(nodes), "--reads", str(reads), "--changed-reads", str(changed_reads)]
    done = subprocess.run(
        [sys.executable, __file__, *arguments],
        cwd=checkout,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the measurement in {checkout} failed:\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


# -- the parent: alternating rounds ------------------------------------------------------------------


def _summary(rounds: list[dict[str, Any]], key: str, field: str) -> str:
    values = [figures[key][field] for figures in rounds]
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def _report(sides: dict[str, list[dict[str, Any]]]) -> None:
    names = list(sides)
    for name, rounds in sides.items():
        print(f"{name}'s code: {sorted({figures['code'] for figures in rounds})}")
    print("| read | " + " | ".join(f"{name}: wall ms | {name}: CPU ms" for name in names) + " |")
    print("|---|" + "---|---|" * len(names))
    for key in next(iter(sides.values()))[0]:
        if key == "code":
            continue
        cells = []
        for rounds in sides.values():
            last = rounds[-1][key]
            note = "" if last["etag"] else " (no ETag)"
            cells += [_summary(rounds, key, "wall_ms") + note, _summary(rounds, key, "cpu_ms")]
        statuses = "/".join(str(s) for rounds in sides.values() for s in rounds[-1][key]["statuses"])
        print(f"| {key} ({statuses}) | " + " | ".join(cells) + " |")
    sizes = {name: rounds[-1]["seed unchanged"]["bytes"] for name, rounds in sides.items()}
    print(f"answer bytes (seed route): {sizes}")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=20_000)
    parser.add_argument("--reads", type=int, default=30, help="reads per kind (unchanged, If-None-Match)")
    parser.add_argument("--changed-reads", type=int, default=5, help="reads of a changed run per route")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another checkout (B), e.g. an export of main")
    parser.add_argument("--one", action="store_true", help="one child in this process: its figures as JSON")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        print("redis-server is not installed (apt-get install redis-server)", file=sys.stderr)
        sys.exit(2)
    if args.one:
        print(json.dumps(asyncio.run(child(args.nodes, args.reads, args.changed_reads))))
        return
    sides: dict[str, Path] = {"A": HERE}
    if args.baseline is not None:
        sides["B"] = args.baseline.resolve()
    print(f"A = {HERE}" + (f", B = {sides['B']}" if "B" in sides else ""))
    print(f"load average at the start {_load()}; {os.cpu_count()} cores")
    figures: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    order = list(sides)
    for _ in range(args.rounds):
        for name in order:
            figures[name].append(measure_in(sides[name], args.nodes, args.reads, args.changed_reads))
        order.reverse()
    print(f"load average at the end {_load()}")
    print(f"{args.nodes:,}-node run, {args.rounds} rounds; per read, median of the rounds' medians (range)")
    _report(figures)


if __name__ == "__main__":
    main()
