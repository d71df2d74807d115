"""``dag-service status``: its "error or reason" column says why a node that is not finished is where
it is. The answer is the seed status route's document of a run built by the domain (``status_of``
of its run view), served to the command in place of the HTTP call."""

from __future__ import annotations

import json
from typing import Any

import pytest
from domain_builders import RUN_ID, handle, new_run, node, plan_of
from typer.testing import CliRunner

from domain.events import CancelRequested, NodeFailed, NodeStarted, RunStarted
from domain.run import Run
from services.api.seed_schemas import status_of
from services.application.run_view import run_view
from services.cli import app, http_calls

API = "http://api.test/api"


def serve(monkeypatch: pytest.MonkeyPatch, run: Run) -> None:
    document = status_of(run_view(run)).model_dump(mode="json")

    def request(
        method: str, url: str, body: Any, headers: dict[str, str], timeout: float
    ) -> http_calls.Answer:
        assert (method, url) == ("GET", f"{API}/workflows/{RUN_ID}")
        return http_calls.Answer(200, "OK", json.dumps(document).encode())

    monkeypatch.setattr(http_calls, "request", request)


def status_table(monkeypatch: pytest.MonkeyPatch, run: Run) -> str:
    serve(monkeypatch, run)
    result = CliRunner().invoke(app, ["status", RUN_ID, "--api-url", API], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def row(node_id: str, status: str, attempts: int, said: str) -> str:
    return f"│ {node_id} │ {status} │ {attempts} │ {said} │"


def test_status_shows_why_a_node_not_finished_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    run = new_run(
        plan_of(
            node("flaky", retry_policy={"max_attempts": 2, "initial_backoff_seconds": 5}),
            node("after", ["flaky"]),
            node("busy"),
        )
    )
    handle(run, RunStarted(RUN_ID, 1.0))
    handle(run, NodeStarted(RUN_ID, "busy", 1, "w-1", 2.0))
    handle(run, NodeFailed(RUN_ID, "flaky", 1, "IOError", "flaky broke\nTraceback ...", 10.0, True))

    table = status_table(monkeypatch, run)

    assert "RUNNING (0/3 nodes completed)" in table
    # Waiting for its retry: when it is due, then the error of the attempt that failed.
    due = "waiting for attempt 2, due at 1970-01-01T00:00:15.000Z (last error IOError: flaky broke)"
    assert row("flaky", "PENDING", 1, due) in table, table
    assert row("after", "PENDING", 0, "waiting on flaky") in table, table
    running = "attempt 1 running on worker w-1 since 1970-01-01T00:00:02.000Z"
    assert row("busy", "RUNNING", 1, running) in table, table


def test_status_shows_who_cancelled_and_what_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    run = new_run(plan_of(node("bad"), node("strict", ["bad"]), node("busy")))
    handle(run, RunStarted(RUN_ID, 1.0))
    handle(run, NodeFailed(RUN_ID, "bad", 1, "ValueError", "bad broke", 2.0, False))
    handle(run, CancelRequested(RUN_ID, 3.0, "ops"))

    table = status_table(monkeypatch, run)

    assert row("bad", "FAILED", 1, "ValueError: bad broke") in table, table
    skipped = "UpstreamFailed: skipped because upstream node 'bad' failed"
    assert row("strict", "SKIPPED", 0, skipped) in table, table
    assert row("busy", "CANCELLED", 1, "cancelled with the run, on request of ops") in table, table
