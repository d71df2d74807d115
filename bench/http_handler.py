"""Requests per second of the built-in ``http`` handler, per worker, against a loopback server.

    uv run python -m bench.http_handler [--requests 2000] [--concurrency 64] [--repeat 3]

A uvicorn server (a bare ASGI app answering a small JSON document; httptools, uvloop) runs in a
process of its own on 127.0.0.1, so that serving does not share this process's CPU. This process
runs the embedded engine (memory backend) with one worker and the built-in ``http`` handler, its
SSRF guard allowing 127.0.0.0/8 as ``HTTP_ALLOW_NETWORKS`` would. One run of ``--requests`` independent
``http`` nodes is timed from its start to its end; every node must end COMPLETED with status 200. The
same DAG of ``noop`` nodes is timed too: the engine's own cost per node, to set the figure against.
The report is the median of the repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import statistics
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

from dependency_injector import providers

from bench.processes import LOOPBACK, free_port, spawn, stop_group
from domain.statuses import RunStatus
from services.container import Container
from services.engine import EmbeddedEngine
from services.settings import Settings
from services.worker.builtin import register_builtins
from services.worker.handlers.http import HttpHandler, HttpOptions
from services.worker.handlers.ssrf import AddressPolicy
from services.worker.registry import HandlerContext, HandlerRegistry

BODY = json.dumps({"ok": True, "items": list(range(10))}).encode()
type Receive = Callable[[], Awaitable[dict[str, Any]]]
type Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """The server's whole application: every request gets ``BODY``."""
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


def serve(port: int) -> None:
    import uvicorn  # noqa: PLC0415 - only the server process needs it

    uvicorn.run(app, host=LOOPBACK, port=port, log_level="warning", access_log=False)


def wait_until_serving(url: str, deadline_seconds: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


async def noop(ctx: HandlerContext) -> dict[str, Any]:
    return {}


def container_for(concurrency: int) -> Container:
    http = HttpHandler(
        HttpOptions(AddressPolicy(allow_networks=(ipaddress.ip_network("127.0.0.0/8"),)), 1 << 20)
    )
    registry = register_builtins(HandlerRegistry(), http=http)
    registry.register("noop")(noop)
    container = Container()
    container.settings.override(providers.Object(Settings(worker_concurrency=concurrency)))
    container.registry.override(providers.Object(registry))
    return container


def fan_out(handler: str, count: int, url: str) -> dict[str, Any]:
    config = {"url": url} if handler == "http" else {}
    nodes = [{"id": f"n{i}", "handler": handler, "dependencies": [], "config": config} for i in range(count)]
    return {"name": f"bench_{handler}", "dag": {"nodes": nodes}}


async def timed_run(container: Container, engine: EmbeddedEngine, definition: dict[str, Any]) -> float:
    workflows = container.workflows()
    stored = await workflows.register(definition)
    started = time.perf_counter()
    run = await workflows.start(stored.definition_id, {})
    status = await engine.wait_for(run.run_id)
    elapsed = time.perf_counter() - started
    finished = await workflows.get_run(run.run_id)
    if status is not RunStatus.COMPLETED:
        failed = [(spec.id, n.error) for spec, n in finished.node_states() if n.error is not None][:3]
        raise RuntimeError(f"the run ended {status}: {failed} ...")
    if definition["name"] == "bench_http":
        outputs = [finished.outputs[f"n{i}"] for i in range(len(definition["dag"]["nodes"]))]
        assert all(output["status"] == 200 and output["body"]["ok"] for output in outputs)
    return elapsed


async def measure(args: argparse.Namespace, url: str) -> dict[str, list[float]]:
    container = container_for(args.concurrency)
    seconds: dict[str, list[float]] = {"http": [], "noop": []}
    async with EmbeddedEngine(container, workers=1) as engine:
        await timed_run(container, engine, fan_out("http", 100, url))  # warm-up: connections, imports
        for _ in range(args.repeat):
            for handler in ("http", "noop"):
                seconds[handler].append(
                    await timed_run(container, engine, fan_out(handler, args.requests, url))
                )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="http nodes in the run (one request each)")
    parser.add_argument("--concurrency", type=int, default=64, help="WORKER_CONCURRENCY of the one worker")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the server process
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    port = free_port()
    server = spawn([sys.executable, "-m", "bench.http_handler", "--serve", str(port)], die_with_parent=True)
    url = f"http://{LOOPBACK}:{port}/data"
    try:
        wait_until_serving(url)
        seconds = asyncio.run(measure(args, url))
    finally:
        stop_group(server, 5)
    http, engine = statistics.median(seconds["http"]), statistics.median(seconds["noop"])
    rate = args.requests / http
    print(
        f"load average {os.getloadavg()[0]:.1f}; {args.requests} http nodes, "
        f"concurrency {args.concurrency}, 1 worker"
    )
    print(
        f"http handler: {rate:,.0f} requests/s per worker (median of {args.repeat}; runs "
        + ", ".join(f"{args.requests / s:,.0f}" for s in seconds["http"])
        + ")"
    )
    print(f"same DAG of noop nodes: {args.requests / engine:,.0f} nodes/s (the engine's own share)")
    per_request_ms = (http - engine) / args.requests * 1000
    print(f"each request adds about {per_request_ms:.2f} ms to the run's wall time (the handler and httpx)")


if __name__ == "__main__":
    main()
