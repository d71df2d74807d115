"""A real HTTP server on 127.0.0.1 for the ``http`` handler's tests (and its benchmark), and a
dialer that refuses — and records — any address that is not loopback, so that no test can send a
packet elsewhere even with the SSRF guard broken.

Routes: ``/json``, ``/text``, ``/echo`` (method, headers, query and body back as JSON),
``/status/N``, ``/flaky/KEY?fails=N`` (500 the first N times for KEY, then 200), ``/slow?seconds=S``,
``/big?bytes=N[&declared=1]`` (N bytes, chunked unless declared), ``/redirect?to=URL``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from httpcore import AsyncNetworkStream

from services.worker.handlers.connect import DirectDialer, SocketOption
from services.worker.handlers.ssrf import IPAddress

CHUNK = 16 * 1024


class ForbiddenDial(AssertionError):
    """The connector was asked for an address that is not loopback: the guard let it through."""


@dataclass
class LoopbackOnlyDialer:
    """Dials loopback addresses only; anything else is recorded and refused without a packet."""

    dialed: list[IPAddress] = field(default_factory=list)
    forbidden: list[IPAddress] = field(default_factory=list)
    _direct: DirectDialer = field(default_factory=DirectDialer)

    async def dial(
        self,
        address: IPAddress,
        port: int,
        timeout: float | None,  # noqa: ASYNC109 - the Dialer protocol's signature
        local_address: str | None,
        socket_options: Iterable[SocketOption] | None,
    ) -> AsyncNetworkStream:
        if not address.is_loopback:
            self.forbidden.append(address)
            raise ForbiddenDial(f"the test's connector was asked to dial {address}: the guard let it by")
        self.dialed.append(address)
        return await self._direct.dial(address, port, timeout, local_address, socket_options)


@dataclass
class StubResolver:
    """Answers every host with ``answers`` (or per host), counting the lookups."""

    answers: list[str]
    by_host: dict[str, list[str]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.lookups.append(host)
        return [ipaddress.ip_address(a) for a in self.by_host.get(host, self.answers)]


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits: Counter[str] = Counter()
        self.release = threading.Event()


class LoopbackServer:
    def __init__(self, server: ThreadingHTTPServer, state: _State) -> None:
        self._server = server
        self._state = state
        self.port = server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def hits(self, path: str) -> int:
        with self._state.lock:
            return self._state.hits[path]


class _Handler(BaseHTTPRequestHandler):
    server: Any
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: bytes, content_type: str = "text/plain", **headers: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
            self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._answer(status, json.dumps(value).encode(), "application/json")

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def do_PUT(self) -> None:
        self._route()

    def _route(self) -> None:
        state: _State = self.server.state
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with state.lock:
            state.hits[parts.path] += 1
            hits = state.hits[parts.path]
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        segments = parts.path.strip("/").split("/")
        match segments:
            case ["json"]:
                self._json(200, {"ok": True, "items": [1, 2, 3]})
            case ["text"]:
                self._answer(200, b"plain words", "text/plain; charset=utf-8")
            case ["echo"]:
                self._json(
                    200,
                    {
                        "method": self.command,
                        "host": self.headers.get("host"),
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "query": query,
                        "body": body.decode(),
                    },
                )
            case ["status", code]:
                self._answer(int(code), f"status {code}".encode())
            case ["flaky", _key]:
                if hits <= int(query.get("fails", "1")):
                    self._answer(500, b"not yet")
                else:
                    self._json(200, {"after": hits})
            case ["slow"]:
                state.release.wait(float(query.get("seconds", "5")))
                self._answer(200, b"late")
            case ["big"]:
                self._big(int(query["bytes"]), declared=query.get("declared") == "1")
            case ["redirect"]:
                self._answer(302, b"", location=query["to"])
            case _:
                self._answer(404, b"no such route")

    def _big(self, size: int, *, declared: bool) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/octet-stream")
        if declared:
            self.send_header("content-length", str(size))
        else:
            self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        sent = 0
        try:
            while sent < size:
                part = b"x" * min(CHUNK, size - sent)
                self.wfile.write(part if declared else b"%x\r\n%s\r\n" % (len(part), part))
                sent += len(part)
            if not declared:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading at its cap and closed


@contextmanager
def loopback_server() -> Iterator[LoopbackServer]:
    """The server in a thread of its own, stopped (and its slow answers released) on exit."""
    state = _State()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.block_on_close = False
    server.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield LoopbackServer(server, state)
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
