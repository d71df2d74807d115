"""The seed's way of driving the engine: ``dag-service web`` + 2 workers, a client on the seed's
routes that polls ``GET /api/workflows/{id}`` every 2 ms until the run is final. Compares ``web``
with its orchestrator in a child process (``WEB_ORCHESTRATOR_PROCESS=true``, the default) and in the
API's own process (``false``, as before), alternating, in one session.

    uv run python -m bench.web_path [--workloads W1,W4] [--pairs 2] [--poll-ms 2]

For W4 (20,000 nodes) each status read is O(nodes) of Python work in the API: in one process it
competes with the orchestrator for one event loop; apart, it cannot delay a transition.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.engine_cluster import Cluster
from bench.processes import LOOPBACK, free_port
from bench.workloads import workload_definitions

FINAL = {"COMPLETED", "FAILED", "CANCELLED"}


class WebStack(Cluster):
    """redis-server + ``dag-service web`` + two workers."""

    READY_WHAT = "web and its workers"

    def __init__(self, folder: Path, args: argparse.Namespace, redis_binary: str, apart: bool) -> None:
        super().__init__(folder, args, redis_binary)
        self.api_port = free_port()
        self.apart = apart

    def child_env(self) -> dict[str, str]:
        env = super().child_env()
        env.update(
            API_HOST=LOOPBACK, API_PORT=str(self.api_port), WEB_ORCHESTRATOR_PROCESS=str(self.apart).lower()
        )
        return env

    def _start_engine(self) -> None:
        env = self.child_env()
        self.engine.append(self._spawn("web", self._command("web", "web"), env))
        for number in (1, 2):
            self.engine.append(self._spawn(f"worker{number}", self._command("worker", "worker"), env))

    def _stream_consumers(self) -> int:
        return 3  # the orchestrator (a child of web, or inside it) and the two workers

    def _serving(self) -> bool:
        try:
            return _request(self.api_port, "GET", "/api/health")[0] == 200
        except OSError:
            return False


def _request(
    port: int, method: str, path: str, body: Any = None, conn: http.client.HTTPConnection | None = None
) -> tuple[int, Any]:
    own = conn is None
    conn = conn or http.client.HTTPConnection(LOOPBACK, port, timeout=60)
    try:
        payload = None if body is None else json.dumps(body)
        conn.request(method, path, payload, {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        if own:
            conn.close()


def drive(port: int, definition: dict[str, Any], poll_seconds: float) -> dict[str, Any]:
    """Submit, trigger, poll until final; the run's seconds and the status reads made."""
    status, submitted = _request(port, "POST", "/api/workflow", definition)
    assert status == 200, submitted
    status, triggered = _request(
        port, "POST", f"/api/workflow/trigger/{submitted['execution_id']}", {"input": {}}
    )
    assert status == 200, triggered
    started = time.perf_counter()
    instance = triggered["instance_id"]
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=60)
    reads = 0
    try:
        while True:
            status, view = _request(port, "GET", f"/api/workflows/{instance}", conn=conn)
            reads += 1
            if view.get("state") in FINAL:
                break
            time.sleep(poll_seconds)
    finally:
        conn.close()
    seconds = time.perf_counter() - started
    if view["state"] != "COMPLETED":
        raise RuntimeError(f"run {instance} ended {view['state']}")
    return {"seconds": seconds, "reads": reads, "nodes": len(definition["dag"]["nodes"])}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.web_path", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="W1,W4")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--poll-ms", type=float, default=2.0)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=512)
    args = parser.parse_args(argv)
    args.profile = args.py_spy = None
    redis_binary = shutil.which("redis-server")
    if redis_binary is None:
        raise SystemExit("redis-server not found")
    definitions = workload_definitions(seed=1)
    names = [name.strip().upper() for name in args.workloads.split(",") if name.strip()]
    print(f"web path, poll every {args.poll_ms} ms, load {os.getloadavg()}")
    for _ in range(args.pairs):
        for apart in (True, False):
            with tempfile.TemporaryDirectory(prefix="bench-web-") as folder:
                stack = WebStack(Path(folder), args, redis_binary, apart)
                try:
                    stack.start()
                    for name in names:
                        _description, make, _ = definitions[name]
                        result = drive(stack.api_port, make(), args.poll_ms / 1000)
                        rate = result["nodes"] / result["seconds"]
                        mode = "apart" if apart else "one process"
                        print(
                            f"{name} {mode:12} {result['seconds']:7.2f} s {rate:8,.0f} nodes/s "
                            f"{result['reads']:6} reads  load {os.getloadavg()[0]:.1f}"
                        )
                finally:
                    stack.stop()


if __name__ == "__main__":
    main()
