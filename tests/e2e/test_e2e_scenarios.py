"""The example scenarios A, B and C through the real ``dag-service`` console script."""

from __future__ import annotations

import json
from typing import Any

import pytest
from e2e_cases import load_example
from e2e_cli import CliBatch, CliResult, seconds

SCENARIOS = {
    "a_json": "scenario_a_linear",
    "b_json": "scenario_b_fan_out_fan_in",
    "c_json": "scenario_c_full",
}


def completed_report(result: CliResult) -> dict[str, Any]:
    assert result.returncode == 0, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    return result.json()


def dependencies_of(example: str) -> dict[str, list[str]]:
    return {raw["id"]: raw["dependencies"] for raw in load_example(example)["dag"]["nodes"]}


@pytest.mark.parametrize("key", list(SCENARIOS))
def test_scenario_completes_with_every_node_completed(cli: CliBatch, key: str) -> None:
    report = completed_report(cli[key])
    example = SCENARIOS[key]

    assert report["status"] == "COMPLETED"
    assert report["workflow"] == example
    assert list(report["nodes"]) == list(dependencies_of(example))
    for node_id, node in report["nodes"].items():
        assert node["status"] == "COMPLETED", (node_id, node)
        assert node["attempts"] == 1, (node_id, node)
        assert node["error"] is None, (node_id, node)
        assert "output" in node, node_id
        assert node["started_at"] <= node["finished_at"], (node_id, node)
    assert report["started_at"] <= report["finished_at"]
    took = seconds(report["finished_at"]) - seconds(report["started_at"])
    assert report["duration_seconds"] == pytest.approx(took, abs=1e-5)


@pytest.mark.parametrize("key", list(SCENARIOS))
def test_scenario_runs_no_node_before_its_dependencies_finish(cli: CliBatch, key: str) -> None:
    nodes = completed_report(cli[key])["nodes"]
    for node_id, deps in dependencies_of(SCENARIOS[key]).items():
        for dep in deps:
            assert nodes[dep]["finished_at"] <= nodes[node_id]["started_at"], (dep, node_id)


def test_scenario_a_renders_the_run_input_into_the_url(cli: CliBatch) -> None:
    nodes = completed_report(cli["a_json"])["nodes"]

    assert nodes["input"]["output"] == {"input_payload": {"user_id": "u-123"}}
    get_user = nodes["get_user"]["output"]
    assert get_user["url"].endswith("/u-123")
    assert get_user["url"] == "https://jsonplaceholder.typicode.com/users/u-123"
    summary = nodes["summarize_user"]["output"]
    assert summary["prompt"] == f"Summarize this user profile: {get_user['fetched_content']}"
    assert nodes["output"]["output"] == {"summarize_user": summary}


def test_scenario_b_fans_out_in_parallel_and_fans_in(cli: CliBatch) -> None:
    nodes = completed_report(cli["b_json"])["nodes"]
    user, comments = nodes["get_user"], nodes["get_comments"]

    # Each 2-second call started before the other finished: they overlapped.
    assert user["started_at"] < comments["finished_at"]
    assert comments["started_at"] < user["finished_at"]
    assert user["output"]["url"].endswith("/users/u-123")
    assert comments["output"]["url"].endswith("?user=u-123")
    fan_in = nodes["output"]["output"]
    assert set(fan_in) == {"get_user", "get_comments"}
    assert fan_in["get_user"] == user["output"]
    assert fan_in["get_comments"] == comments["output"]


def test_scenario_c_resolves_templates_from_the_run_input_and_ancestors(cli: CliBatch) -> None:
    nodes = completed_report(cli["c_json"])["nodes"]
    outputs = {node_id: node["output"] for node_id, node in nodes.items()}

    # {{ workflow.input.user_id }}: the run input, given with --input-file.
    assert outputs["get_posts"]["url"].endswith("/posts?userId=u-123")
    assert outputs["get_comments"]["url"].endswith("/comments?userId=u-123")
    # {{ input.input_payload.user_id }} read by final_report, for which 'input' is an ancestor only.
    report_prompt = outputs["final_report"]["prompt"]
    assert "u-123" in report_prompt
    assert report_prompt.startswith("Write a report for user u-123.")
    assert outputs["analyze_posts"]["response"] in report_prompt
    assert outputs["analyze_comments"]["response"] in report_prompt
    analyze_prompt = outputs["analyze_posts"]["prompt"]
    assert outputs["get_user"]["url"] in analyze_prompt
    assert outputs["get_posts"]["fetched_content"] in analyze_prompt
    assert outputs["analyze_posts"]["model"] == "simulated-small"
    assert outputs["output"] == {"final_report": outputs["final_report"]}
    assert "{{" not in json.dumps(outputs)
    # Three workers were asked for; the run says which one ran each node.
    assert {node["worker_id"] for node in nodes.values()} <= {"worker-1", "worker-2", "worker-3"}


def test_human_output_shows_final_status_and_every_output(cli: CliBatch) -> None:
    human, machine = cli["a_human"], completed_report(cli["a_json"])
    assert human.returncode == 0, human.describe()
    assert "Traceback" not in human.stderr

    headline = human.stdout_text
    assert "'scenario_a_linear': COMPLETED" in headline
    assert "(4/4 nodes completed)" in headline
    for node_id, node in machine["nodes"].items():
        assert f"{node_id} output:" in human.stdout
        # Outputs are deterministic, so the JSON run's output appears verbatim: compact JSON, its
        # first 300 characters (``--full`` prints it whole).
        compact = json.dumps(node["output"], ensure_ascii=False, separators=(", ", ": "))
        assert compact[:300] in human.stdout, node_id
        assert (len(compact) > 300) == (f"{len(compact) - 300} more characters" in human.stdout), node_id
    with pytest.raises(json.JSONDecodeError):
        json.loads(human.stdout)


def test_human_output_of_a_failed_run_exits_1_and_shows_the_failure(cli: CliBatch) -> None:
    human = cli["retries_human"]
    assert human.returncode == 1, human.describe()
    assert "Traceback" not in human.stderr

    text = human.stdout_text
    assert "'retries_and_failure': FAILED" in text
    assert "(3/6 nodes completed)" in text
    assert "SimulatedServiceError" in text
    assert "broken_service" in text
    for node_id in ("input", "flaky_service", "use_flaky"):
        assert f"{node_id} output:" in human.stdout
    for node_id in ("broken_service", "use_broken", "output"):
        assert f"{node_id} output:" not in human.stdout


def test_validate_accepts_a_valid_example(cli: CliBatch) -> None:
    result = cli["validate_c"]
    assert result.returncode == 0, result.describe()
    assert result.stdout.strip() == (
        "valid: workflow 'scenario_c_full' with 8 nodes, 9 dependencies, 1 root(s)"
    )
    assert result.stderr == ""
