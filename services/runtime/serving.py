"""Serving in a long-running process: the event loop every deployable runs on, the name a process's
role consumes under, and HTTP served until the process's stop event."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
from collections.abc import Callable, Iterator

import uvicorn
from starlette.types import ASGIApp

from services.application.errors import UsageError


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (it comes with uvicorn[standard]; not on Windows): the
    deployables spend much of their time in the event loop and socket I/O."""
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:
        return None
    return uvloop.new_event_loop


def consumer_name(role: str) -> str:
    """``host-pid-role``: unique per process and role, so consumer groups tell replicas apart."""
    return f"{socket.gethostname()}-{os.getpid()}-{role}"


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: this process's stop event rules every role."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_http(
    app: ASGIApp,
    host: str,
    port: int,
    stop: asyncio.Event,
    what: str = "the HTTP API",
    grace_seconds: float | None = None,
    access_log: bool = False,
) -> None:
    """Serve ``app`` until ``stop`` is set, then let open requests finish for at most
    ``grace_seconds`` (None: as long as they take). If the server ends by itself (it could not listen),
    set ``stop`` so that the process's other roles end too, and raise ``UsageError``. ``access_log``:
    a line per request, at INFO whatever the process's level (it was asked for by its setting)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        log_config=None,  # uvicorn's lines go through the process's handler (LOG_FORMAT) too
        lifespan="off",
        # Off unless asked for: uvicorn formats every access line even when it is not shown.
        access_log=access_log,
        proxy_headers=False,  # nothing here reads the client's address
        timeout_graceful_shutdown=None if grace_seconds is None else math.ceil(grace_seconds),
    )
    if access_log:
        # uvicorn set its access logger to the ``log_level`` above; its lines reach the root's handler.
        access = logging.getLogger("uvicorn.access")
        access.setLevel(logging.INFO)
        access.propagate = True
    server = _Server(config)
    serving = asyncio.create_task(server.serve())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    with contextlib.suppress(SystemExit):  # uvicorn's way of saying it could not start
        await serving
    if not stop.is_set():
        stopping.cancel()
        stop.set()  # the other roles of this process stop with the API
        raise UsageError(f"{what} could not listen on {host}:{port}")
