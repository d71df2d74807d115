"""The client commands (submit, trigger, status, results) against a real `dag-service up` process.

Each server is the console script started as a subprocess on a free port with the embedded backend;
the commands run as subprocesses too, so exit codes and output are exactly what a shell sees.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import up_server
from e2e_cli import EXAMPLES, PROCESS_TIMEOUT_SECONDS, CliResult, cli_env
from up_server import Server

from bench.processes import DAG_SERVICE, LOOPBACK, free_port, run_captured

EXIT_COMPLETED, EXIT_FAILED, EXIT_INVALID, EXIT_UNAVAILABLE = 0, 1, 2, 3
RUN_TIMEOUT_SECONDS = 30.0
USER_INPUT = '{"user_id": "u-123"}'


def api_url(port: int) -> str:
    return f"http://{LOOPBACK}:{port}/api"


@pytest.fixture(scope="module")
def pycache(engine_pycache: Path | None) -> Path | None:
    return engine_pycache


def start_server(log_dir: Path, pycache: Path | None, **settings: str) -> Server:
    return up_server.start_server(
        log_dir / "server.log",
        pycache,
        # A test may leave a slow run going (its handlers sleep 10 s): the stop need not wait for it.
        {"ENGINE_BACKEND": "memory", "SHUTDOWN_GRACE_SECONDS": "1", **settings},
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pycache: Path | None) -> Iterator[Server]:
    started = start_server(tmp_path_factory.mktemp("open_server"), pycache)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def guarded_server(tmp_path_factory: pytest.TempPathFactory, pycache: Path | None) -> Iterator[Server]:
    started = start_server(tmp_path_factory.mktemp("guarded_server"), pycache, API_TOKENS="secret")
    try:
        yield started
    finally:
        started.stop()


def scenario_b(directory: Path, delay_seconds: float) -> Path:
    """A copy of the fan-out/fan-in example whose simulated services take ``delay_seconds``."""
    definition = json.loads((EXAMPLES / "scenario_b_fan_out_fan_in.json").read_text(encoding="utf-8"))
    for node in definition["dag"]["nodes"]:
        if node["handler"] == "call_external_service":
            node["config"]["delay_seconds"] = delay_seconds
    path = directory / f"scenario_b_{delay_seconds:g}.json"
    path.write_text(json.dumps(definition), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def definitions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("client_definitions")
    return {"fast": scenario_b(directory, 0.05), "slow": scenario_b(directory, 10)}


def client(*args: str, pycache: Path | None, **env: str) -> CliResult:
    """Run one client command; ``env`` adds DAG_API_URL / DAG_API_TOKEN (nothing is inherited)."""
    base = {k: v for k, v in cli_env(pycache).items() if k not in {"DAG_API_URL", "DAG_API_TOKEN"}}
    completed = run_captured([str(DAG_SERVICE), *args], env={**base, **env}, timeout=PROCESS_TIMEOUT_SECONDS)
    result = CliResult(tuple(args), completed.returncode, completed.stdout, completed.stderr)
    assert "Traceback" not in result.stderr, result.describe()
    return result


def submit_and_trigger(server: Server, definition: Path, pycache: Path | None) -> str:
    submitted = client("submit", str(definition), "--api-url", server.url, pycache=pycache)
    assert submitted.returncode == EXIT_COMPLETED, submitted.describe()
    execution_id = submitted.stdout.strip()
    assert execution_id and "\n" not in execution_id, submitted.describe()
    triggered = client(
        "trigger", execution_id, "--input", USER_INPUT, "--api-url", server.url, pycache=pycache
    )
    assert triggered.returncode == EXIT_COMPLETED, triggered.describe()
    instance_id = triggered.stdout.strip()
    assert instance_id and "\n" not in instance_id, triggered.describe()
    return instance_id


def wait_until_finished(server: Server, instance_id: str, pycache: Path | None) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while True:
        result = client("status", instance_id, "--json", "--api-url", server.url, pycache=pycache)
        assert result.returncode == EXIT_COMPLETED, result.describe()
        status = result.json()
        if status["state"] in {"COMPLETED", "FAILED", "CANCELLED"}:
            return status
        assert time.monotonic() < deadline, f"run still {status['state']} after {RUN_TIMEOUT_SECONDS} s"
        time.sleep(0.2)


def test_submit_trigger_status_results(
    server: Server, definitions: dict[str, Path], pycache: Path | None
) -> None:
    instance_id = submit_and_trigger(server, definitions["fast"], pycache)

    status = wait_until_finished(server, instance_id, pycache)
    assert status["state"] == "COMPLETED"
    assert status["instance_id"] == instance_id
    assert set(status["nodes"]) == {"input", "get_user", "get_comments", "output"}
    assert all(node["status"] == "COMPLETED" and node["attempts"] == 1 for node in status["nodes"].values())

    table = client("status", instance_id, "--api-url", server.url, pycache=pycache)
    assert table.returncode == EXIT_COMPLETED, table.describe()
    assert f"Run {instance_id}" in table.stdout_text, table.describe()
    assert "COMPLETED (4/4 nodes completed)" in table.stdout_text, table.describe()
    for header in ("node", "status", "attempts", "error", "get_comments"):
        assert header in table.stdout, table.describe()

    results = client("results", instance_id, "--json", "--api-url", server.url, pycache=pycache)
    assert results.returncode == EXIT_COMPLETED, results.describe()
    document = results.json()
    assert document["status"] == "COMPLETED"
    output = document["results"]["output"]
    assert set(output) == {"get_user", "get_comments"}
    assert output["get_user"]["url"] == "https://jsonplaceholder.typicode.com/users/u-123"
    assert output["get_comments"]["status_code"] == 200

    plain = client("results", instance_id, "--api-url", server.url, pycache=pycache)
    assert plain.returncode == EXIT_COMPLETED, plain.describe()
    assert json.loads(plain.stdout) == document["results"]


def test_trigger_wait_answers_when_the_run_ends(
    server: Server, definitions: dict[str, Path], pycache: Path | None
) -> None:
    submitted = client("submit", str(definitions["fast"]), "--api-url", server.url, pycache=pycache)
    execution_id = submitted.stdout.strip()
    waited = client(
        "trigger",
        execution_id,
        "--input",
        USER_INPUT,
        "--wait",
        "--json",
        "--api-url",
        server.url,
        pycache=pycache,
    )
    assert waited.returncode == EXIT_COMPLETED, waited.describe()
    status = waited.json()
    assert status["state"] == "COMPLETED"
    assert all(node["status"] == "COMPLETED" for node in status["nodes"].values())
    table = client(
        "trigger", execution_id, "--input", USER_INPUT, "--wait", "--api-url", server.url, pycache=pycache
    )
    assert table.returncode == EXIT_COMPLETED, table.describe()
    assert "COMPLETED (4/4 nodes completed)" in table.stdout_text, table.describe()


def test_submit_json_prints_the_api_answer(
    server: Server, definitions: dict[str, Path], pycache: Path | None
) -> None:
    result = client("submit", str(definitions["fast"]), "--json", "--api-url", server.url, pycache=pycache)
    assert result.returncode == EXIT_COMPLETED, result.describe()
    assert set(result.json()) == {"execution_id"}


def test_results_of_a_run_still_going_exit_2(
    server: Server, definitions: dict[str, Path], pycache: Path | None
) -> None:
    instance_id = submit_and_trigger(server, definitions["slow"], pycache)
    result = client("results", instance_id, "--api-url", server.url, pycache=pycache)
    assert result.returncode == EXIT_INVALID, result.describe()
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.describe()
    assert lines[0].startswith("error: ") and "not finished" in lines[0], result.describe()


@pytest.mark.parametrize("command", ["status", "results", "trigger"])
def test_unknown_id_exits_2_naming_not_found(server: Server, pycache: Path | None, command: str) -> None:
    result = client(command, "no-such-id", "--api-url", server.url, pycache=pycache)
    assert result.returncode == EXIT_INVALID, result.describe()
    assert result.stderr.startswith("error: ") and "not found" in result.stderr_text, result.describe()


def test_invalid_definition_lists_every_problem_with_its_path(
    server: Server, tmp_path: Path, pycache: Path | None
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {"name": "bad", "dag": {"nodes": [{"id": "a", "handler": "nope", "dependencies": ["b"]}]}}
        ),
        encoding="utf-8",
    )
    result = client("submit", str(bad), "--api-url", server.url, pycache=pycache)
    assert result.returncode == EXIT_INVALID, result.describe()
    assert "invalid workflow definition" in result.stderr_text
    assert "  $.dag.nodes[0].dependencies[0]: node 'a' depends on unknown node 'b'" in result.stderr
    assert "  $.dag.nodes[0].handler: " in result.stderr


@pytest.mark.parametrize(
    "command", [("status", "some-id"), ("submit", str(EXAMPLES / "scenario_a_linear.json"))]
)
def test_api_down_exits_3_in_one_line(pycache: Path | None, command: tuple[str, str]) -> None:
    url = api_url(free_port())  # nothing listens there
    result = client(*command, pycache=pycache, DAG_API_URL=url)
    assert result.returncode == EXIT_UNAVAILABLE, result.describe()
    assert result.stderr.splitlines() == [f"error: cannot reach the API at {url}"], result.describe()
    assert result.stdout == ""


def test_without_a_token_the_401_message_is_shown(guarded_server: Server, pycache: Path | None) -> None:
    result = client("status", "any-id", pycache=pycache, DAG_API_URL=guarded_server.url)
    assert result.returncode == EXIT_INVALID, result.describe()
    assert "requires a bearer token" in result.stderr_text and "401" in result.stderr_text
    assert "set DAG_API_TOKEN to one of its API_TOKENS" in result.stderr_text, result.describe()

    wrong = client("status", "any-id", pycache=pycache, DAG_API_URL=guarded_server.url, DAG_API_TOKEN="nope")
    assert wrong.returncode == EXIT_INVALID, wrong.describe()
    assert "the bearer token is not valid" in wrong.stderr_text
    assert "the token in DAG_API_TOKEN is not one the server accepts" in wrong.stderr_text, wrong.describe()


def test_with_the_token_from_the_environment_the_commands_work(
    guarded_server: Server, definitions: dict[str, Path], pycache: Path | None
) -> None:
    env = {"DAG_API_URL": guarded_server.url, "DAG_API_TOKEN": "secret"}
    submitted = client("submit", str(definitions["fast"]), pycache=pycache, **env)
    assert submitted.returncode == EXIT_COMPLETED, submitted.describe()
    triggered = client("trigger", submitted.stdout.strip(), "--input", USER_INPUT, pycache=pycache, **env)
    assert triggered.returncode == EXIT_COMPLETED, triggered.describe()
    status = client("status", triggered.stdout.strip(), "--json", pycache=pycache, **env)
    assert status.returncode == EXIT_COMPLETED, status.describe()
    assert status.json()["instance_id"] == triggered.stdout.strip()


def test_the_token_is_not_a_command_line_option(pycache: Path | None) -> None:
    result = client("status", "--help", pycache=pycache)
    assert result.returncode == EXIT_COMPLETED
    assert "--api-url" in result.stdout and "--token" not in result.stdout
    assert "DAG_API_TOKEN" in result.stdout_text


def test_watch_follows_a_run_to_its_end(
    server: Server, definitions: dict[str, Path], pycache: Path | None
) -> None:
    instance_id = submit_and_trigger(server, definitions["fast"], pycache)

    watched = client("watch", instance_id, "--api-url", server.url, pycache=pycache)

    assert watched.returncode == EXIT_COMPLETED, watched.describe()
    lines = watched.stdout.splitlines()
    assert "run_started" in lines[0] and "queued input" in lines[0], watched.describe()
    assert sum("node_succeeded" in line for line in lines) == 4, watched.describe()
    assert lines[-1].endswith("=> run COMPLETED"), watched.describe()
    assert f"run {instance_id}: COMPLETED" in watched.stderr_text, watched.describe()

    replay = client("watch", instance_id, "--json", "--api-url", server.url, pycache=pycache)
    assert replay.returncode == EXIT_COMPLETED, replay.describe()
    events = [json.loads(line) for line in replay.stdout.splitlines()]
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert events[-1]["run_status"] == "COMPLETED"


def test_cancel_ends_a_run_and_watch_reports_it(
    server: Server, definitions: dict[str, Path], pycache: Path | None
) -> None:
    instance_id = submit_and_trigger(server, definitions["slow"], pycache)

    cancelled = client("cancel", instance_id, "--api-url", server.url, pycache=pycache)
    assert cancelled.returncode == EXIT_COMPLETED, cancelled.describe()
    assert f"cancel requested for run {instance_id}" in cancelled.stdout_text, cancelled.describe()

    watched = client("watch", instance_id, "--api-url", server.url, pycache=pycache)
    assert watched.returncode == EXIT_FAILED, watched.describe()
    assert watched.stdout.splitlines()[-1].endswith("=> run CANCELLED"), watched.describe()
    status = wait_until_finished(server, instance_id, pycache)
    assert status["state"] == "CANCELLED"
    assert status["nodes"]["output"]["status"] == "CANCELLED"

    again = client("cancel", instance_id, "--api-url", server.url, pycache=pycache)
    assert again.returncode == EXIT_INVALID, again.describe()
    assert "already finished" in again.stderr_text, again.describe()


@pytest.mark.parametrize("command", ["watch", "cancel"])
def test_watch_and_cancel_of_an_unknown_id_exit_2(server: Server, pycache: Path | None, command: str) -> None:
    result = client(command, "no-such-id", "--api-url", server.url, pycache=pycache)
    assert result.returncode == EXIT_INVALID, result.describe()
    assert result.stderr.startswith("error: ") and "not found" in result.stderr_text, result.describe()


def test_redrive_runs_a_failed_run_again_until_it_completes(
    server: Server, tmp_path: Path, pycache: Path | None
) -> None:
    """The README's redrive example with real processes: a node failing its first attempt."""
    definition = {
        "name": "flaky",
        "dag": {
            "nodes": [
                {"id": "fetch", "handler": "call_llm_service", "config": {"delay_seconds": 0}},
                {
                    "id": "flaky",
                    "handler": "call_llm_service",
                    "dependencies": ["fetch"],
                    "config": {"delay_seconds": 0, "fail_attempts": 1},
                },
            ]
        },
    }
    path = tmp_path / "flaky.json"
    path.write_text(json.dumps(definition), encoding="utf-8")
    instance_id = submit_and_trigger(server, path, pycache)
    url = ("--api-url", server.url)

    first = client("watch", instance_id, *url, pycache=pycache)
    assert first.returncode == EXIT_FAILED, first.describe()
    redriven = client("redrive", instance_id, *url, pycache=pycache)
    assert redriven.returncode == EXIT_COMPLETED, redriven.describe()
    assert redriven.stdout.strip().endswith(": flaky"), redriven.describe()
    second = client("watch", instance_id, *url, pycache=pycache)
    assert second.returncode == EXIT_COMPLETED, second.describe()
    assert "redrive_requested" in second.stdout_text, second.describe()

    status = wait_until_finished(server, instance_id, pycache)
    assert status["state"] == "COMPLETED"
    assert {n: status["nodes"][n]["attempts"] for n in ("fetch", "flaky")} == {"fetch": 1, "flaky": 2}
    again = client("redrive", instance_id, *url, pycache=pycache)
    assert again.returncode == EXIT_INVALID, again.describe()
    assert "has completed" in again.stderr, again.describe()
    unknown = client("redrive", instance_id, "--from", "nope", *url, pycache=pycache)
    assert unknown.returncode == EXIT_INVALID, unknown.describe()
    assert "$.from[0]" in unknown.stderr and "nope" in unknown.stderr, unknown.describe()
