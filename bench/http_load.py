"""A small HTTP/1.1 load generator for ``bench.api_load``: run starts and status reads over loopback.

    python -m bench.http_load '<phase config as JSON>'

It runs in its own process (so that its CPU is not the API's), on uvloop when installed, with
``asyncio.Protocol`` connections that keep alive and carry one request at a time: a request is a
pre-built byte string, a response is parsed just far enough to find its status, its
``Content-Length`` and its body. That costs a few tens of microseconds per request, a small fraction
of what the API spends on it. Only the standard library (and uvloop) is imported.

Two streams of requests share the process:

- **starts** (``POST {prefix}/workflow/trigger/{execution_id}``): ``closed`` mode keeps every one of
  ``connections`` busy (each sends its next request as soon as the previous answer arrives: the
  API's capacity); ``open`` mode sends ``start_rate`` requests per second on a fixed schedule,
  whatever the answers do, on a pool of ``connections`` (a request waits for a free connection when
  all are busy, and its latency counts from its scheduled time: no coordinated omission).
- **status reads** (``GET {prefix}/workflows/{instance_id}``): ``status_rate`` per second on a fixed
  schedule, on ``status_connections`` connections of their own, each for a run picked at random among
  those started so far by this process.

After ``warmup`` seconds it prints ``{"event": "window_start"}``, after ``duration`` more
``{"event": "window_end"}`` (so that the caller can sample CPU counters over the same window), waits
up to ``grace`` seconds for the answers in flight, and prints one JSON line with the figures of the
window: throughput counts the 2xx answers that arrived within it, latencies the requests sent (or
scheduled) within it. An open-loop request that found no free connection before the end of the
window is not sent at all: it is counted as ``unsent`` (a backlog: the server did not keep up) and
has no latency. Any answer other than 2xx, a connection lost or a request unanswered after the grace
is an error. Exit 0 when the phase ran (whatever its figures), 1 on a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import resource
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from bench.stats import distribution_ms

MAX_ERROR_SAMPLES = 5
MAX_ERRORS = 1_000  # the closed loop gives up after this many


@dataclass(frozen=True, slots=True)
class Phase:
    host: str
    port: int
    prefix: str
    execution_id: str
    mode: Literal["closed", "open"]
    connections: int
    start_rate: float
    status_rate: float
    status_connections: int
    warmup: float
    duration: float
    grace: float = 10.0


class RequestFailed(Exception):
    """A connection was lost, or an answer could not be parsed."""


# -- one keep-alive connection ----------------------------------------------------------------------


class HttpConnection(asyncio.Protocol):
    """One HTTP/1.1 keep-alive connection carrying one request at a time."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes, float]] | None = None
        self._body_start = 0
        self._end = -1
        self._status = 0
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = RequestFailed(f"connection lost: {exc!r}" if exc else "connection closed by the server")
        self._fail(self.lost)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            self._parse()
        except (ValueError, IndexError) as error:
            self._fail(RequestFailed(f"unparsable answer: {error}"))
            if self._transport is not None:
                self._transport.close()

    def _parse(self) -> None:
        if self._end < 0:
            head_end = self._buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(self._buffer[:head_end]).lower()
            self._status = int(head[9:12])
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                raise ValueError("no Content-Length (chunked answers are not supported)")
            line_end = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : line_end if line_end >= 0 else len(head)])
            self._body_start = head_end + 4
            self._end = self._body_start + length
        if len(self._buffer) < self._end:
            return
        body = bytes(self._buffer[self._body_start : self._end])
        del self._buffer[: self._end]
        self._end = -1
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self._status, body, time.perf_counter()))

    def _fail(self, error: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    async def send(self, request: bytes) -> tuple[int, bytes, float]:
        """Write ``request``; return (status, body, perf_counter when the answer was complete)."""
        if self.lost is not None or self._transport is None:
            raise self.lost or RequestFailed("not connected")
        waiter: asyncio.Future[tuple[int, bytes, float]] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self._transport.write(request)
        return await waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class Pool:
    """Idle connections; a lost connection is replaced by a new one when it is returned."""

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._idle: asyncio.Queue[HttpConnection] = asyncio.Queue()
        self._all: list[HttpConnection] = []

    async def open(self, count: int) -> None:
        for _ in range(count):
            self._idle.put_nowait(await self._connect())

    async def _connect(self) -> HttpConnection:
        _, protocol = await asyncio.get_running_loop().create_connection(
            HttpConnection, self._host, self._port
        )
        self._all.append(protocol)
        return protocol

    async def acquire(self) -> HttpConnection:
        return await self._idle.get()

    async def release(self, connection: HttpConnection) -> None:
        if connection.lost is not None:
            connection = await self._connect()
        self._idle.put_nowait(connection)

    def close(self) -> None:
        for connection in self._all:
            connection.close()


# -- requests and their figures ---------------------------------------------------------------------


def trigger_request(phase: Phase, number: int) -> bytes:
    body = json.dumps({"input": {"user_id": f"u-{number}"}}, separators=(",", ":")).encode()
    head = (
        f"POST {phase.prefix}/workflow/trigger/{phase.execution_id} HTTP/1.1\r\n"
        f"Host: {phase.host}:{phase.port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def status_request(phase: Phase, instance_id: str) -> bytes:
    host = f"{phase.host}:{phase.port}"
    return f"GET {phase.prefix}/workflows/{instance_id} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


@dataclass
class Stream:
    """Figures of one kind of request over the window [t0, t1)."""

    name: str
    t0: float = math.inf
    t1: float = math.inf
    sent: int = 0  # requests sent (or scheduled) within the window
    answered_in_window: int = 0  # 2xx answers that arrived within the window
    latencies: list[float] = field(default_factory=list)  # seconds, requests of the window
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    in_flight: int = 0  # requests written, not answered yet
    unsent: int = 0  # open loop: scheduled, but no connection was free before the end of the window

    def in_window(self, moment: float) -> bool:
        return self.t0 <= moment < self.t1

    def record(self, began: float, status: int, body: bytes, done: float) -> bool:
        if not 200 <= status < 300:
            self._error(f"HTTP {status}: {body[:200].decode(errors='replace')}")
            return False
        if self.in_window(began):
            self.latencies.append(done - began)
        if self.in_window(done):
            self.answered_in_window += 1
        return True

    def failed(self, error: BaseException) -> None:
        self._error(f"{type(error).__name__}: {error}")

    def _error(self, text: str) -> None:
        """Errors count wherever they happen, warm-up included: any error fails the phase."""
        self.errors += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(text)

    def summary(self) -> dict[str, Any]:
        window = self.t1 - self.t0
        return {
            "sent": self.sent,
            "answered": len(self.latencies),
            "per_second": self.answered_in_window / window if window > 0 else 0.0,
            "latency_ms": distribution_ms(self.latencies),
            "errors": self.errors,
            "error_samples": self.error_samples,
            "unsent": self.unsent,
        }


# -- the phase --------------------------------------------------------------------------------------


class LoadGenerator:
    def __init__(self, phase: Phase) -> None:
        self.phase = phase
        self.starts = Stream("starts")
        self.statuses = Stream("statuses")
        self.started_ids: list[str] = []
        self.states: dict[str, int] = {}  # run state seen by the status reads of the window
        self._numbers = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._crashes: list[BaseException | None] = []
        self._stop = 0.0

    # one request of each kind

    async def _exchange(
        self, pool: Pool, stream: Stream, request: bytes, scheduled: float | None
    ) -> tuple[bytes, float] | None:
        """Send ``request`` on a free connection; the body of a 2xx answer and the moment the request
        counts from (``scheduled``, or when it was written), or None when it failed (recorded)."""
        connection = await pool.acquire()
        if scheduled is not None and time.perf_counter() >= self._stop:
            # Open loop: scheduled before the end, but no connection was free until after it. Sending
            # it now would only prolong the phase; it is reported as a backlog left unsent.
            stream.unsent += 1
            await pool.release(connection)
            return None
        began = time.perf_counter() if scheduled is None else scheduled
        if stream.in_window(began):
            stream.sent += 1
        stream.in_flight += 1
        try:
            status, body, done = await connection.send(request)
        except RequestFailed as error:
            stream.failed(error)
            return None
        finally:
            stream.in_flight -= 1
            await pool.release(connection)
        return (body, began) if stream.record(began, status, body, done) else None

    async def _start_one(self, pool: Pool, scheduled: float | None) -> None:
        self._numbers += 1
        answer = await self._exchange(
            pool, self.starts, trigger_request(self.phase, self._numbers), scheduled
        )
        if answer is not None:
            self.started_ids.append(json.loads(answer[0])["instance_id"])

    async def _status_one(self, pool: Pool, scheduled: float) -> None:
        if not self.started_ids:
            return  # nothing started yet (first moments of the warm-up)
        request = status_request(self.phase, random.choice(self.started_ids))
        answer = await self._exchange(pool, self.statuses, request, scheduled)
        if answer is not None and self.statuses.in_window(answer[1]):
            state = _state_of(answer[0])
            self.states[state] = self.states.get(state, 0) + 1

    # drivers

    async def _closed_loop(self, pool: Pool) -> None:
        while time.perf_counter() < self._stop:
            await self._start_one(pool, None)
            if self.starts.errors > MAX_ERRORS:
                self._stop = time.perf_counter()  # failing fast in a loop measures nothing

    async def _open_loop(self, rate: float, fire: Callable[[float], Coroutine[Any, Any, None]]) -> None:
        """Start ``fire(scheduled_time)`` ``rate`` times a second until the stop time."""
        interval = 1.0 / rate
        scheduled = time.perf_counter()
        while scheduled < self._stop:
            now = time.perf_counter()
            if scheduled > now:
                await asyncio.sleep(scheduled - now)
                continue
            while scheduled <= now and scheduled < self._stop:
                self._spawn(fire(scheduled))
                scheduled += interval

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._crashes.append(task.exception())  # re-raised once the phase is over

    async def run(self) -> dict[str, Any]:
        phase = self.phase
        start_pool = Pool(phase.host, phase.port)
        status_pool = Pool(phase.host, phase.port)
        try:
            await start_pool.open(phase.connections)
            if phase.status_rate > 0:
                await status_pool.open(phase.status_connections)
            t0 = time.perf_counter() + phase.warmup
            self._stop = t0 + phase.duration
            for stream in (self.starts, self.statuses):
                stream.t0, stream.t1 = t0, self._stop
            drivers = self._drivers(start_pool, status_pool)
            cpu_before = await self._mark_window()
            await asyncio.gather(*drivers)
            await self._drain(phase.grace)
            cpu = _own_cpu_seconds() - cpu_before
            if self._crashes:
                raise RuntimeError("a request task crashed") from self._crashes[0]
        finally:
            start_pool.close()
            status_pool.close()
        return {
            "mode": phase.mode,
            "window_seconds": phase.duration,
            "starts": self.starts.summary(),
            "statuses": self.statuses.summary(),
            "status_states": self.states,
            "runs_started": len(self.started_ids),
            "loadgen_cpu_seconds": cpu,
        }

    def _drivers(self, start_pool: Pool, status_pool: Pool) -> list[asyncio.Future[None]]:
        phase = self.phase
        drivers: list[Coroutine[Any, Any, None]] = []
        if phase.mode == "closed":
            drivers += [self._closed_loop(start_pool) for _ in range(phase.connections)]
        else:
            drivers.append(self._open_loop(phase.start_rate, lambda at: self._start_one(start_pool, at)))
        if phase.status_rate > 0:
            drivers.append(self._open_loop(phase.status_rate, lambda at: self._status_one(status_pool, at)))
        return [asyncio.ensure_future(driver) for driver in drivers]

    async def _mark_window(self) -> float:
        """Print the window's start and end as they pass; return this process's CPU at the start."""
        t0, t1 = self.starts.t0, self.starts.t1
        await asyncio.sleep(max(0.0, t0 - time.perf_counter()))
        _emit({"event": "window_start"})
        cpu = _own_cpu_seconds()

        async def mark_end() -> None:
            await asyncio.sleep(max(0.0, t1 - time.perf_counter()))
            _emit({"event": "window_end"})

        self._spawn(mark_end())
        return cpu

    async def _drain(self, grace: float) -> None:
        """Wait for the requests still in flight; after ``grace`` s, one unanswered is an error."""
        pending = set(self._tasks)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=grace)
        for stream in (self.starts, self.statuses):
            if stream.in_flight:
                stream.errors += stream.in_flight
                stream.error_samples.append(f"{stream.in_flight} request(s) unanswered after {grace:g} s")
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _state_of(body: bytes) -> str:
    at = body.find(b'"state":"')
    if at < 0:
        return "?"
    end = body.find(b'"', at + 9)
    return body[at + 9 : end].decode()


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _emit(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


def _event_loop_runner() -> Callable[[Any], Any]:
    try:
        import uvloop  # noqa: PLC0415  (optional: the standard loop works too, a little slower)
    except ImportError:
        return asyncio.run
    return uvloop.run


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    phase = Phase(**json.loads(argv[0]))
    result = _event_loop_runner()(LoadGenerator(phase).run())
    _emit({"event": "result", **result})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
