"""A newcomer's first hour with the command line, through the real console script: configuration
mistakes in one line with their own exit code, a handler module from the working directory, a failed
handler's traceback, outputs shortened unless ``--full``, ISO times in ``--json``, Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from e2e_cli import EXAMPLES, PROCESS_TIMEOUT_SECONDS, cli_env
from newcomer_support import HANDLERS_MODULE, command, failing_workflow, write_handlers, write_workflow

from bench.processes import DAG_SERVICE, finish_captured, spawn_captured

EXIT_FAILED, EXIT_CONFIG, EXIT_INTERRUPTED = 1, 78, 130
EXAMPLE = str(EXAMPLES / "scenario_a_linear.json")

CONFIG_MISTAKES = {
    "API_PORT=abc": (("api",), {"API_PORT": "abc"}, ["API_PORT='abc'", "integer from 1 to 65535"]),
    "ENGINE_BACKEND=postgres": (("run", EXAMPLE), {"ENGINE_BACKEND": "postgres"}, ["'memory' or 'redis'"]),
    "REDIS_URL=notaurl": (("worker",), {"REDIS_URL": "notaurl"}, ["REDIS_URL='notaurl'", "redis://"]),
    "WORKER_HANDLER_MODULES=nosuchmod": (
        ("worker",),
        {"WORKER_HANDLER_MODULES": "nosuchmod"},
        ["WORKER_HANDLER_MODULES", "'nosuchmod'", "No module named"],
    ),
    "--handlers nosuchmod": (("run", EXAMPLE, "--handlers", "nosuchmod"), {}, ["--handlers", "'nosuchmod'"]),
    "REDIS_URL password stays hidden": (
        ("worker",),
        {"REDIS_URL": "http://:hunter2@host:6379/0"},
        ["REDIS_URL='http://:***@host:6379/0'"],
    ),
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_handlers(tmp_path_factory.mktemp("newcomer_cli"))


@pytest.mark.parametrize("mistake", list(CONFIG_MISTAKES))
def test_a_configuration_mistake_is_one_line_and_exit_78(
    mistake: str, folder: Path, engine_pycache: Path | None
) -> None:
    args, env, expected = CONFIG_MISTAKES[mistake]
    result = command(*args, cwd=folder, pycache=engine_pycache, **env)
    assert result.returncode == EXIT_CONFIG, result.describe()
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("configuration error: "), result.describe()
    for part in expected:
        assert part in lines[0], result.describe()
    assert "hunter2" not in result.stderr


def test_run_loads_handlers_from_the_working_directory_and_shows_the_traceback(
    folder: Path, engine_pycache: Path | None
) -> None:
    workflow = str(failing_workflow(folder))
    result = command(
        "run", workflow, "--json", "--handlers", HANDLERS_MODULE, cwd=folder, pycache=engine_pycache
    )
    assert result.returncode == EXIT_FAILED, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    document = result.json()
    failed = document["nodes"]["b"]
    assert failed["status"] == "FAILED" and failed["attempts"] == 2
    assert failed["error"]["type"] == "ValueError"
    message = failed["error"]["message"]
    assert message.startswith("boom in deep_helper\nTraceback (most recent call last):"), message
    assert f"{HANDLERS_MODULE}.py" in message and "in deep_helper" in message
    assert "services/worker" not in message, "the worker's own frames are left out"
    for time_field in ("created_at", "started_at", "finished_at"):
        assert datetime.fromisoformat(document[time_field]).utcoffset() is not None, document[time_field]
    assert datetime.fromisoformat(failed["failed_attempts"][0]["finished_at"])
    assert len(document["nodes"]["a"]["output"]["text"]) == 2000, "--json keeps outputs whole"


def test_run_shortens_outputs_unless_full(folder: Path, engine_pycache: Path | None) -> None:
    workflow = str(failing_workflow(folder))
    short = command("run", workflow, "--handlers", HANDLERS_MODULE, cwd=folder, pycache=engine_pycache)
    full = command(
        "run", workflow, "--handlers", HANDLERS_MODULE, "--full", cwd=folder, pycache=engine_pycache
    )
    for result in (short, full):
        assert result.returncode == EXIT_FAILED, result.describe()
        assert "ValueError: boom in deep_helper" in result.stdout_text
        assert "in deep_helper" in result.stdout, "the traceback is printed under the table"
    assert "x" * 2000 not in short.stdout and "--full shows all" in short.stdout_text, short.describe()
    assert "x" * 2000 in full.stdout.replace("\n", ""), full.describe()


@contextlib.contextmanager
def sigint_not_ignored() -> Iterator[None]:
    """A child started meanwhile gets SIGINT's default action even where this process ignores it
    (a suite started in the background by a non-interactive shell: its jobs ignore SIGINT, and an
    ignored signal stays ignored across exec, so the child would never hear the Ctrl-C)."""
    if signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)  # a handler: exec resets it to default
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_ctrl_c_on_run_exits_130_with_one_line(folder: Path, engine_pycache: Path | None) -> None:
    marker = folder / "sleepy-started"
    marker.unlink(missing_ok=True)
    sleepy = {"id": "s", "handler": "sleepy", "dependencies": [], "config": {"marker": str(marker)}}
    workflow = write_workflow(folder, "sleepy", [sleepy])
    with sigint_not_ignored():
        process = spawn_captured(
            [str(DAG_SERVICE), "run", str(workflow), "--handlers", HANDLERS_MODULE],
            env=cli_env(engine_pycache),
            cwd=folder,
        )
    try:
        deadline = time.monotonic() + PROCESS_TIMEOUT_SECONDS
        while not marker.exists():
            assert process.poll() is None, finish_captured(process, 5)
            assert time.monotonic() < deadline, "the handler never started"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        stdout, stderr = finish_captured(process, 30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == EXIT_INTERRUPTED, (stdout, stderr)
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted:"), stderr
    assert json.dumps(stdout) == '""'
