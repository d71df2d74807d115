"""``examples/redrive.json`` through the real commands, on both backends: ``dag-service up`` (the
embedded engine, and the same command with ``ENGINE_BACKEND=redis`` on a real redis-server), the
client's ``submit``, ``trigger --wait``, ``redrive`` and ``watch`` as a shell runs them.

The run fails on its first life (charge fails its first attempt, the map fetch its second page);
redriven, it completes, and only what failed or never ran runs again: the completed nodes and the
map's completed first page keep their attempt, times and output. A second redrive (the run has
completed) and one naming an unknown node are refused with exit 2, on both backends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_cases import example
from e2e_cli import PROCESS_TIMEOUT_SECONDS, CliResult, cli_env
from up_server import Server, start_server

from bench.processes import DAG_SERVICE, run_captured

EXIT_COMPLETED, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


@pytest.fixture(params=["memory", "redis"])
def server(request: pytest.FixtureRequest, tmp_path: Path, engine_pycache: Path | None) -> Iterator[Server]:
    settings = {"ENGINE_BACKEND": "memory"}
    if request.param == "redis":
        redis = request.getfixturevalue("redis_server")
        settings = {
            "ENGINE_BACKEND": "redis",
            "REDIS_URL": str(redis.url),
            "REDIS_KEY_PREFIX": f"e2e-redrive-{uuid.uuid4().hex[:8]}",
        }
    started = start_server(tmp_path / "server.log", engine_pycache, settings)
    try:
        yield started
    finally:
        started.stop()


def client(server: Server, pycache: Path | None, *args: str) -> CliResult:
    env = {k: v for k, v in cli_env(pycache).items() if k not in {"DAG_API_URL", "DAG_API_TOKEN"}}
    command = [str(DAG_SERVICE), *args, "--api-url", server.url]
    completed = run_captured(command, env=env, timeout=PROCESS_TIMEOUT_SECONDS)
    result = CliResult(tuple(args), completed.returncode, completed.stdout, completed.stderr)
    assert "Traceback" not in result.stderr, result.describe()
    return result


def view(server: Server, run_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{server.url}/runs/{run_id}", timeout=10.0)
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


def items(server: Server, run_id: str, node_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{server.url}/runs/{run_id}/nodes/{node_id}/items", timeout=10.0)
    assert answer.status_code == 200, answer.text
    page: list[dict[str, Any]] = answer.json()["items"]
    return page


def kept(node: dict[str, Any]) -> tuple[Any, ...]:
    """What must not change for a node (or an item) that is not run again."""
    return (node["status"], node["attempts"], node["started_at"], node["finished_at"], node.get("output"))


def test_the_redrive_example_fails_then_completes_running_again_only_what_failed(
    server: Server, engine_pycache: Path | None
) -> None:
    submitted = client(server, engine_pycache, "submit", example("redrive"))
    assert submitted.returncode == EXIT_COMPLETED, submitted.describe()
    first = client(server, engine_pycache, "trigger", submitted.stdout.strip(), "--wait", "--json")
    assert first.returncode == EXIT_FAILED, first.describe()
    run_id = first.json()["instance_id"]

    before = view(server, run_id)
    assert before["status"] == "FAILED"
    statuses = {n: node["status"] for n, node in before["nodes"].items()}
    assert statuses == {
        "input": "COMPLETED",
        "prepare": "COMPLETED",
        "charge": "FAILED",
        "fetch": "FAILED",
        "report": "SKIPPED",
    }
    assert before["nodes"]["fetch"]["error"]["type"] == "ItemsFailed"
    pages_before = items(server, run_id, "fetch")
    first_life = [("COMPLETED", 1), ("FAILED", 1), ("WAITING", 0)]  # the third page never started
    assert [(p["status"], p["attempts"]) for p in pages_before] == first_life

    redriven = client(server, engine_pycache, "redrive", run_id)
    assert redriven.returncode == EXIT_COMPLETED, redriven.describe()
    assert redriven.stdout.strip().endswith(": charge, fetch, report"), redriven.describe()
    watched = client(server, engine_pycache, "watch", run_id)
    assert watched.returncode == EXIT_COMPLETED, watched.describe()
    assert "redrive_requested" in watched.stdout_text, watched.describe()

    after = view(server, run_id)
    assert after["status"] == "COMPLETED"
    assert {n: node["status"] for n, node in after["nodes"].items()} == dict.fromkeys(statuses, "COMPLETED")
    for untouched in ("input", "prepare"):  # completed in the first life: not run again
        assert kept(after["nodes"][untouched]) == kept(before["nodes"][untouched])
    assert after["nodes"]["charge"]["attempts"] == 2  # attempts go on counting
    assert [a["attempt"] for a in after["nodes"]["charge"]["failed_attempts"]] == [1]
    pages_after = items(server, run_id, "fetch")
    assert kept(pages_after[0]) == kept(pages_before[0])  # the completed page is kept
    assert [(p["status"], p["attempts"]) for p in pages_after[1:]] == [("COMPLETED", 101), ("COMPLETED", 101)]

    answer = httpx.get(f"{server.url}/runs/{run_id}/results", timeout=10.0)
    assert answer.status_code == 200, answer.text
    output = answer.json()["output"]
    assert output["charged"] == 200
    assert [page["url"] for page in output["pages"]] == [
        "https://example.com/a",
        "https://example.com/b",
        "https://example.com/c",
    ]

    again = client(server, engine_pycache, "redrive", run_id)
    assert again.returncode == EXIT_INVALID and "has completed" in again.stderr_text, again.describe()
    unknown = client(server, engine_pycache, "redrive", run_id, "--from", "nope")
    assert unknown.returncode == EXIT_INVALID, unknown.describe()
    assert "$.from[0]" in unknown.stderr and "nope" in unknown.stderr, unknown.describe()
