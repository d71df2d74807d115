"""The workflow-language examples (``examples/``) through the real ``dag-service run``, on both
backends: the embedded memory engine, and the same command with ``ENGINE_BACKEND=redis`` on a real
redis-server. Each example's description says what it shows; these tests check that it does."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_cases import example
from e2e_cli import run_cli

type Report = dict[str, Any]


def statuses(report: Report) -> dict[str, str]:
    return {node_id: node["status"] for node_id, node in report["nodes"].items()}


def written(sent: dict[str, Any]) -> set[str]:
    """The offers ``send_offer`` received (a skipped parent's output is null)."""
    return {offer for offer, output in sent.items() if output is not None}


def check_branching_premium(report: Report) -> None:
    assert report["status"] == "COMPLETED"
    assert statuses(report) == {
        "input": "COMPLETED",
        "premium_offer": "COMPLETED",
        "standard_offer": "SKIPPED",
        "send_offer": "COMPLETED",
    }
    assert report["nodes"]["standard_offer"]["error"]["type"] == "ConditionFalse"
    assert report["output"]["tier"] == "premium"
    assert written(report["output"]["sent"]) == {"premium_offer"}


def check_branching_standard(report: Report) -> None:
    assert report["status"] == "COMPLETED"
    assert statuses(report)["premium_offer"] == "SKIPPED"
    assert statuses(report)["standard_offer"] == "COMPLETED"
    assert written(report["output"]["sent"]) == {"standard_offer"}


def check_optional_and_retries(report: Report) -> None:
    assert report["status"] == "COMPLETED"
    charge, enrich = report["nodes"]["charge"], report["nodes"]["enrich"]
    assert (charge["status"], charge["attempts"]) == ("COMPLETED", 2)
    assert (enrich["status"], enrich["attempts"]) == ("FAILED", 1)  # never retried
    assert enrich["error"]["type"] == "SimulatedPermanentError"
    assert statuses(report)["report"] == "COMPLETED"
    assert report["output"] == {"charged": 200}


def check_fail_fast(report: Report) -> None:
    assert report["status"] == "FAILED"
    assert statuses(report) == {
        "input": "COMPLETED",
        "broken": "FAILED",
        "slow": "CANCELLED",
        "after_slow": "CANCELLED",
        "cleanup": "COMPLETED",
    }
    assert report["duration_seconds"] < 3  # slow's 3 seconds were not waited for


def check_run_timeout(report: Report) -> None:
    assert report["status"] == "FAILED"
    assert report["error"]["type"] == "RunTimedOut"
    assert statuses(report) == {"input": "COMPLETED", "slow": "CANCELLED", "output": "CANCELLED"}


def check_typed_input(report: Report) -> None:
    assert report["status"] == "COMPLETED"
    output = report["output"]
    assert (output["user_id"], output["language"], output["max_words"]) == ("u-5", "en", 50)  # defaults
    assert output["summary"].startswith("[simulated-llm] answer to: In en, in at most 50 words, summarize: ")


def check_transform_and_sleep(report: Report) -> None:
    assert report["status"] == "COMPLETED"
    assert report["output"]["large_orders"] == ["o-1", "o-3"]
    assert report["output"]["total"] == 420
    # The prompt named config keys, which templates filled (a list is formatted as Python's str.format does).
    assert report["output"]["message"] == "Thank ada for orders ['o-1', 'o-3'], 420 in all."
    assert report["nodes"]["pause"]["output"] == {"slept_seconds": 0.2}


def check_map(report: Report) -> None:
    assert report["status"] == "COMPLETED"
    fetch = report["nodes"]["fetch"]
    assert fetch["items"]["total"] == 4 and fetch["items"]["completed"] == 4
    pages = report["nodes"]["report"]["output"]["fetch"]
    assert [page["url"] for page in pages] == ["u0", "u1", "u2", "u3"]  # the items' order
    assert [page["config"]["page"] for page in pages] == [0, 1, 2, 3]


CASES: dict[str, tuple[str, dict[str, Any], int, Callable[[Report], None]]] = {
    "branching-premium": ("branching", {"tier": "premium"}, 0, check_branching_premium),
    "branching-standard": ("branching", {"tier": "basic"}, 0, check_branching_standard),
    "optional_and_retries": ("optional_and_retries", {}, 0, check_optional_and_retries),
    "fail_fast": ("fail_fast", {}, 1, check_fail_fast),
    "run_timeout": ("run_timeout", {}, 1, check_run_timeout),
    "typed_input": ("typed_input", {"user_id": "u-5"}, 0, check_typed_input),
    "transform_and_sleep": ("transform_and_sleep", {}, 0, check_transform_and_sleep),
    "map": ("map", {"urls": ["u0", "u1", "u2", "u3"]}, 0, check_map),
}


@pytest.fixture(params=["memory", "redis"])
def backend_settings(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "memory":
        return {}
    server = request.getfixturevalue("redis_server")
    return {
        "ENGINE_BACKEND": "redis",
        "REDIS_URL": str(server.url),
        "REDIS_KEY_PREFIX": f"e2e-{uuid.uuid4().hex[:8]}",
    }


@pytest.mark.parametrize("case", list(CASES))
def test_language_example(case: str, backend_settings: dict[str, str], engine_pycache: Path | None) -> None:
    name, run_input, exit_code, check = CASES[case]
    result = run_cli(
        "run",
        example(name),
        "--input",
        json.dumps(run_input),
        "--json",
        pycache_prefix=engine_pycache,
        settings=backend_settings,
    )
    assert result.returncode == exit_code, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    check(result.json())
