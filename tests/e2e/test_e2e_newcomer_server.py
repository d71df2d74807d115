"""A newcomer's first hour with a server: ``dag-service up --host --port --handlers`` started in a
folder holding the handlers module; a failed handler's traceback in ``status`` and ``watch``, its
log lines through ``logs`` and the logs route, ``DAG_API_URL`` without the ``/api`` prefix, the
start-up line and the access log, and clients leaving the event stream early without an error in
the server's log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from e2e_cli import PROCESS_TIMEOUT_SECONDS, cli_env
from newcomer_support import HANDLERS_MODULE, command, failing_workflow, write_handlers, write_workflow

from bench.processes import DAG_SERVICE, LOOPBACK, LoggedProcess, free_port, start_logged

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


class Server:
    def __init__(self, folder: Path, pycache: Path | None) -> None:
        self.folder = folder
        self.pycache = pycache
        self.port = free_port()
        self.root_url = f"http://{LOOPBACK}:{self.port}"  # no /api: the commands add it
        args = ["up", "--host", LOOPBACK, "--port", str(self.port), "--handlers", HANDLERS_MODULE]
        # No LOG_LEVEL: a long-running role logs at INFO by default (its start-up line shows).
        env = {**cli_env(pycache), "API_ACCESS_LOG": "true"}
        self.process: LoggedProcess = start_logged(
            "dag-service up", [str(DAG_SERVICE), *args], folder / "up.log", env=env, cwd=folder
        )

    def wait_serving(self) -> None:
        deadline = time.monotonic() + PROCESS_TIMEOUT_SECONDS
        while True:
            assert self.process.running(), self.process.log()
            try:
                if httpx.get(f"{self.root_url}/api/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, self.process.log()
            time.sleep(0.1)

    def cli(self, *args: str) -> tuple[int, str, str]:
        result = command(*args, cwd=self.folder, pycache=self.pycache, DAG_API_URL=self.root_url)
        assert "Traceback (most recent call last)" not in result.stderr, result.describe()
        return result.returncode, result.stdout, result.stderr

    def start_run(self, workflow: Path) -> str:
        code, execution_id, err = self.cli("submit", str(workflow))
        assert code == EXIT_OK, err
        code, run_id, err = self.cli("trigger", execution_id.strip())
        assert code == EXIT_OK, err
        return run_id.strip()

    def wait_final(self, run_id: str) -> dict[str, object]:
        deadline = time.monotonic() + PROCESS_TIMEOUT_SECONDS
        while True:
            run = httpx.get(f"{self.root_url}/api/runs/{run_id}", timeout=5.0).json()
            if run["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
                return dict(run)
            assert time.monotonic() < deadline, run
            time.sleep(0.1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine_pycache: Path | None) -> Iterator[Server]:
    started = Server(write_handlers(tmp_path_factory.mktemp("newcomer_server")), engine_pycache)
    try:
        started.wait_serving()
        yield started
    finally:
        started.process.stop(10.0)


@pytest.fixture(scope="module")
def failed_run(server: Server) -> str:
    run_id = server.start_run(failing_workflow(server.folder))
    assert server.wait_final(run_id)["status"] == "FAILED"
    return run_id


def test_the_start_up_line_says_what_the_process_is(server: Server) -> None:
    [line] = [line for line in server.process.log().splitlines() if "started api" in line]
    assert " INFO services.cli.serve: started api" in f" {line}", line
    assert "backend memory" in line and f"API at http://{LOOPBACK}:{server.port}/api" in line, line
    assert "explode" in line and "talk" in line, "the handlers served are named"


def test_the_access_log_has_a_line_per_request(server: Server) -> None:
    marker = f"/api/health?probe={time.monotonic_ns()}"
    assert httpx.get(f"{server.root_url}{marker}", timeout=5.0).status_code == 200
    deadline = time.monotonic() + PROCESS_TIMEOUT_SECONDS
    while not (lines := [line for line in server.process.log().splitlines() if marker in line]):
        assert time.monotonic() < deadline, server.process.log()[-3000:]
        time.sleep(0.05)
    [line] = lines
    assert " INFO uvicorn.access: " in line and f'"GET {marker} HTTP/1.1" 200' in line, line


def test_status_and_watch_show_the_traceback(server: Server, failed_run: str) -> None:
    code, out, _ = server.cli("status", failed_run)
    assert code == EXIT_OK
    assert "ValueError: boom in deep_helper" in out and "b error:" in out and "in deep_helper" in out, out
    code, out, _ = server.cli("watch", failed_run)
    assert code == EXIT_FAILED
    assert "Traceback (most recent call last):" in out and f"{HANDLERS_MODULE}.py" in out, out


def test_the_api_shows_the_traceback_in_the_attempts_error(server: Server, failed_run: str) -> None:
    run = httpx.get(f"{server.root_url}/api/runs/{failed_run}", timeout=5.0).json()
    node = run["nodes"]["b"]
    assert node["error"]["type"] == "ValueError"
    assert "Traceback (most recent call last):" in node["error"]["message"]
    assert "in deep_helper" in node["failed_attempts"][0]["error"]["message"]


def test_logs_show_what_each_attempt_logged(server: Server, failed_run: str) -> None:
    code, out, err = server.cli("logs", failed_run, "b")
    assert code == EXIT_OK, err
    assert "INFO newcomer_handlers: about to explode on attempt 2" in out, out
    assert "WARNING dag.handler: config is {'k': 1}" in out
    assert out.rstrip().endswith("ValueError: boom in deep_helper"), "the traceback comes last"
    assert "attempt 2" in err
    code, out, _ = server.cli("logs", failed_run, "b", "--attempt", "1")
    assert code == EXIT_OK and "about to explode on attempt 1" in out and "attempt 2" not in out, out
    code, out, _ = server.cli("logs", failed_run, "a")
    assert code == EXIT_OK and "INFO dag.handler: hello from an async handler" in out, out


def test_the_logs_route(server: Server, failed_run: str) -> None:
    url = f"{server.root_url}/api/runs/{failed_run}/nodes/b/logs"
    answer = httpx.get(url, params={"attempt": 1}, timeout=5.0).json()
    assert answer["run_id"] == failed_run and answer["node_id"] == "b" and answer["attempt"] == 1
    assert any("about to explode on attempt 1" in line for line in answer["lines"])
    assert httpx.get(url, timeout=5.0).json()["attempt"] == 2, "the latest attempt by default"
    refused = httpx.get(url, params={"attempt": 3}, timeout=5.0)
    assert refused.status_code == 400 and "attempts 1 to 2" in refused.json()["error"]["message"]
    missing = httpx.get(f"{server.root_url}/api/runs/{failed_run}/nodes/zz/logs", timeout=5.0)
    assert missing.status_code == 404 and "has no node 'zz'" in missing.json()["error"]["message"]
    code, _, err = server.cli("logs", failed_run, "zz")
    assert code == EXIT_INVALID and "has no node 'zz'" in err


def test_clients_leaving_the_event_stream_early_are_not_errors(server: Server) -> None:
    nodes = [{"id": "root", "handler": "input", "dependencies": [], "config": {}}]
    nodes += [{"id": f"n{i}", "handler": "input", "dependencies": ["root"], "config": {}} for i in range(300)]
    run_id = server.start_run(write_workflow(server.folder, "wide", nodes))
    assert server.wait_final(run_id)["status"] == "COMPLETED"
    logged_before = len(server.process.log())
    for _ in range(16):  # each leaves after its first line, with hundreds of events still to send
        with httpx.stream("GET", f"{server.root_url}/api/runs/{run_id}/events", timeout=5.0) as stream:
            for _line in stream.iter_lines():
                break
    assert httpx.get(f"{server.root_url}/api/health", timeout=5.0).status_code == 200
    written = server.process.log()[logged_before:]
    assert "Traceback" not in written and "ERROR" not in written, written[-3000:]
