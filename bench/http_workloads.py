"""Workloads W1-W4 driven over HTTP the way a user drives them: register the definition,
start the runs, wait for each until it is final, in one of four waiting styles
(``bench.http_targets.STYLES``):

- ``poll``: the seed's routes, ``GET /api/workflows/{id}`` every ``poll_seconds`` (2 ms) until final;
- ``wait``: the seed's routes, ``GET /api/workflows/{id}?wait=SECONDS`` (a long-poll, again if the
  time ran out);
- ``runs-wait``: the resource API, ``GET /api/runs/{id}?wait=SECONDS``;
- ``sse``: the resource API, ``GET /api/runs/{id}/events`` read until the event carrying
  ``run_status``.

Every run's waiter begins as soon as its start is answered (W3: 500 runs started 64 at a time, as the
in-engine driver does, so up to 500 waiters at once). **seconds** runs from just before the first
start request to the moment the client knows the last run is final: what a user sees, its own
notice of the end included.

The client is ``bench.http_load``'s keep-alive connection (a pre-built request, a minimal parser of
the answer), one per request in flight, plus a raw socket for each event stream that only looks
for the event ending the run: httpx spent ~5 s of CPU on W3's 500 runs (one core, next to the API on
a 2-core machine), more than the API, so it measured the client.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from bench.http_load import HttpConnection, RequestFailed
from bench.processes import LOOPBACK
from bench.workload_driver import START_PARALLELISM
from bench.workloads import WorkloadFailed, work_units

FINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})
SEED_STYLES = frozenset({"poll", "wait"})
RUN_STATUS = re.compile(rb'"run_status":"([A-Z]+)"')
"""The SSE event that ends a run; the others carry ``"run_status":null``. Scanning the bytes for it
keeps the client's CPU per event small (W4's stream is ~60,000 events)."""


class HttpRefused(RuntimeError):
    """The API answered a request of the benchmark with an error, or a connection failed."""


IDLE_REUSE_SECONDS = 2.0
"""A keep-alive connection idle longer than this is closed rather than reused: uvicorn closes idle
ones after 5 s, and a request written as it does so is lost (a reset)."""


@dataclass
class Connections:
    """Keep-alive connections to the API, opened as needed; one request at a time on each."""

    port: int
    _idle: list[tuple[float, HttpConnection]] = field(default_factory=list)
    _all: list[HttpConnection] = field(default_factory=list)

    async def request(self, method: str, path: str, body: Any = None, expected: int = 200) -> Any:
        """The answer's JSON. A GET lost with a reused connection is sent once more on a new one;
        a POST is not (a run start is measured as the seed's client sends it, without an
        ``Idempotency-Key``): connections idle too long are not reused, which avoids the race."""
        payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: {LOOPBACK}:{self.port}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        request = (head + "\r\n").encode() + payload
        connection, reused = await self._acquire()
        try:
            status, answer, _ = await connection.send(request)
        except RequestFailed as error:
            if not reused or method != "GET":
                raise HttpRefused(f"{method} {path}: {error}") from None
            connection = await self._connect()
            try:
                status, answer, _ = await connection.send(request)
            except RequestFailed as again:
                raise HttpRefused(f"{method} {path}: {again}") from None
        self._idle.append((time.monotonic(), connection))
        if status != expected:
            raise HttpRefused(f"{method} {path}: {status} {answer[:300]!r}")
        return json.loads(answer)

    async def _acquire(self) -> tuple[HttpConnection, bool]:
        """A connection, and whether it carried requests before."""
        while self._idle:
            since, connection = self._idle.pop()
            if connection.lost is None and time.monotonic() - since < IDLE_REUSE_SECONDS:
                return connection, True
            connection.close()
        return await self._connect(), False

    async def _connect(self) -> HttpConnection:
        _, connection = await asyncio.get_running_loop().create_connection(
            HttpConnection, LOOPBACK, self.port
        )
        self._all.append(connection)
        return connection

    def close(self) -> None:
        for connection in self._all:
            connection.close()


@dataclass
class HttpDriver:
    connections: Connections
    poll_seconds: float = 0.002
    wait_seconds: float = 30.0

    async def register(self, style: str, definition: dict[str, Any]) -> str:
        if style in SEED_STYLES:
            return str((await self.connections.request("POST", "/api/workflow", definition))["execution_id"])
        answer = await self.connections.request("POST", "/api/definitions", definition, expected=201)
        return str(answer["definition_id"])

    async def start(self, style: str, definition_id: str) -> str:
        if style in SEED_STYLES:
            path = f"/api/workflow/trigger/{definition_id}"
            return str((await self.connections.request("POST", path, {"input": {}}))["instance_id"])
        body = {"definition_id": definition_id, "input": {}}
        return str((await self.connections.request("POST", "/api/runs", body, expected=201))["run_id"])

    async def final_status(self, style: str, run_id: str) -> str:
        if style == "sse":
            return await self._stream_until_final(run_id)
        if style == "poll":
            path, key, pause = f"/api/workflows/{run_id}", "state", self.poll_seconds
        elif style == "wait":
            path, key, pause = f"/api/workflows/{run_id}?wait={self.wait_seconds:g}", "state", 0.0
        else:
            path, key, pause = f"/api/runs/{run_id}?wait={self.wait_seconds:g}", "status", 0.0
        while True:
            state = (await self.connections.request("GET", path))[key]
            if state in FINAL:
                return str(state)
            if pause:
                await asyncio.sleep(pause)

    async def _stream_until_final(self, run_id: str) -> str:
        """Read the run's event stream (chunked) until the event that carries ``run_status``."""
        reader, writer = await asyncio.open_connection(LOOPBACK, self.connections.port)
        try:
            path = f"/api/runs/{run_id}/events"
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {LOOPBACK}:{self.connections.port}\r\n\r\n".encode())
            tail = b""
            first = True
            while chunk := await reader.read(65536):
                if first and not chunk.startswith(b"HTTP/1.1 200"):
                    raise HttpRefused(f"GET {path}: {chunk[:200]!r}")
                first = False
                window = tail + chunk
                found = RUN_STATUS.search(window)
                if found:
                    return found.group(1).decode()
                tail = window[-64:]  # a marker split between two reads
        finally:
            writer.close()
        raise HttpRefused(f"the event stream of {run_id} closed before the run ended")


async def drive(driver: HttpDriver, style: str, definition: dict[str, Any], runs: int) -> dict[str, Any]:
    """Register, start ``runs`` runs (64 starts in flight at most), wait for each in ``style``."""
    definition_id = await driver.register(style, definition)
    limit = asyncio.Semaphore(START_PARALLELISM)

    async def one() -> tuple[str, str]:
        async with limit:
            run_id = await driver.start(style, definition_id)
        return run_id, await driver.final_status(style, run_id)

    started = time.perf_counter()
    finished = await asyncio.gather(*(one() for _ in range(runs)))
    seconds = time.perf_counter() - started
    failed = [(run_id, status) for run_id, status in finished if status != "COMPLETED"]
    if failed:
        raise WorkloadFailed(f"{len(failed)} run(s) did not complete (e.g. {failed[0][0]}: {failed[0][1]})")
    nodes = work_units(definition)
    return {
        "nodes": nodes,
        "runs": runs,
        "seconds": seconds,
        "nodes_per_second": nodes * runs / seconds,
        "runs_per_second": runs / seconds,
        "e2e_ms_per_node": seconds / (nodes * runs) * 1000,
    }
