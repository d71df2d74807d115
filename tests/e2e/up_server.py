"""A real ``dag-service up`` for the client commands' tests: the console script as a subprocess on a
free loopback port, its log in a file, answering ``/api/health`` when handed out."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from e2e_cli import cli_env

from bench.processes import DAG_SERVICE, LOOPBACK, LoggedProcess, free_port, start_logged

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class Server:
    url: str
    """The API's root, ``/api`` included."""
    process: LoggedProcess

    def stop(self) -> None:
        self.process.stop(STOP_TIMEOUT_SECONDS)


def start_server(log: Path, pycache: Path | None, settings: dict[str, str]) -> Server:
    """``dag-service up`` with these settings (beside the listening address), once it answers."""
    assert DAG_SERVICE.exists(), f"console script not installed at {DAG_SERVICE}"
    port = free_port()
    env = {**cli_env(pycache), "API_HOST": LOOPBACK, "API_PORT": str(port), **settings}
    process = start_logged("dag-service up", [str(DAG_SERVICE), "up"], log, env=env)
    server = Server(f"http://{LOOPBACK}:{port}/api", process)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if not process.running():
            raise AssertionError(f"dag-service up exited with {process.popen.returncode}:\n{process.tail()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1.0).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise AssertionError(f"dag-service up did not answer within {START_TIMEOUT_SECONDS} s")
