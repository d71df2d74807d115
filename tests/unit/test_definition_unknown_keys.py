"""Unknown keys are refused at every level of a definition, naming the nearest known key; ``x-`` keys
are free for users and never reach the compiled plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from domain_builders import node, problems_of, workflow

from domain.definition import RetryPolicySchema, WorkflowDefinition
from domain.errors import Problem
from domain.unknown_keys import known_keys, unknown_key_message
from domain.validation import build_plan

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_a_misspelt_top_level_key_is_refused_with_the_nearest_known_one() -> None:
    raw = workflow(node("a"))
    raw["descripton"] = "typo"
    message = 'unknown key "descripton"; did you mean "description"?'
    assert problems_of(raw) == [Problem("$.descripton", message)]


def test_a_misspelt_output_does_not_vanish() -> None:
    raw = workflow(node("a"))
    raw["outptu"] = {"result": "{{ a.value }}"}
    assert problems_of(raw) == [Problem("$.outptu", 'unknown key "outptu"; did you mean "output"?')]


@pytest.mark.parametrize(
    ("where", "key", "path", "nearest"),
    [
        ("dag", "nodez", "$.dag.nodez", "nodes"),
        ("node", "dependancies", "$.dag.nodes[2].dependancies", "dependencies"),
        ("node", "handlr", "$.dag.nodes[2].handlr", "handler"),
        ("node", "timeout", "$.dag.nodes[2].timeout", "timeout_seconds"),
        ("node", "trigger_rul", "$.dag.nodes[2].trigger_rul", "trigger_rule"),
        ("node", "wehn", "$.dag.nodes[2].wehn", "when"),
        ("retry_policy", "retry_no", "$.dag.nodes[2].retry_policy.retry_no", "retry_on"),
        ("retry_policy", "max_attemps", "$.dag.nodes[2].retry_policy.max_attemps", "max_attempts"),
        ("retry_policy", "max_backof", "$.dag.nodes[2].retry_policy.max_backof", "max_backoff_seconds"),
    ],
)
def test_unknown_keys_are_refused_at_every_level_with_their_exact_path(
    where: str, key: str, path: str, nearest: str
) -> None:
    third = node("c", ["b"], retry_policy={"max_attempts": 2})
    raw = workflow(node("a"), node("b", ["a"]), third)
    target = {"dag": raw["dag"], "node": third, "retry_policy": third["retry_policy"]}[where]
    target[key] = 1
    problems = problems_of(raw)
    suffix = " (node 'c')" if where != "dag" else ""
    assert problems == [Problem(path, f'unknown key "{key}"; did you mean "{nearest}"?{suffix}')]


def test_a_key_like_no_known_one_lists_the_known_keys() -> None:
    raw = workflow(node("a", retry_policy={"zzz": 1}))
    (problem,) = problems_of(raw)
    assert problem.path == "$.dag.nodes[0].retry_policy.zzz"
    known = ", ".join(RetryPolicySchema.model_fields)
    assert known.startswith("max_attempts, initial_backoff_seconds, backoff_multiplier, max_backoff_seconds")
    assert problem.message == (
        f'unknown key "zzz"; known keys: {known} (keys starting with "x-" are free for your own use) '
        "(node 'a')"
    )


def test_unknown_keys_are_reported_together_with_every_other_problem() -> None:
    raw = workflow(node("a", bogus=1), node("b", ["ghost"]), {"id": "c"})
    raw["nmae"] = "typo"
    paths = [p.path for p in problems_of(raw)]
    assert sorted(paths) == sorted(
        ["$.nmae", "$.dag.nodes[0].bogus", "$.dag.nodes[2].handler", "$.dag.nodes[1].dependencies[0]"]
    )


def test_extension_keys_are_allowed_everywhere_and_kept_out_of_the_plan() -> None:
    raw = workflow(
        node("a", **{"x-owner": "team-a", "retry_policy": {"max_attempts": 2, "x-why": "flaky"}}),
        node("b", ["a"], config={"x-not-special": "config is free form"}),
    )
    raw["x-ticket"] = "OPS-1"
    raw["dag"]["x-layout"] = {"a": [0, 0]}
    plan = build_plan(raw)
    assert "x-ticket" not in plan.source
    assert "x-layout" not in plan.source["dag"]
    first = plan.source["dag"]["nodes"][0]
    assert "x-owner" not in first
    assert first["retry_policy"]["max_attempts"] == 2
    assert "x-why" not in first["retry_policy"]
    assert plan.node("a").retry.max_attempts == 2
    assert plan.source["dag"]["nodes"][1]["config"] == {"x-not-special": "config is free form"}


def test_a_key_that_only_looks_like_an_extension_is_refused() -> None:
    raw = workflow(node("a", **{"x_owner": 1, "X-owner": 2}))
    assert {p.path for p in problems_of(raw)} == {"$.dag.nodes[0].x_owner", "$.dag.nodes[0].X-owner"}


def test_known_keys_follow_the_models_through_lists_and_optional_fields() -> None:
    assert known_keys(()) == list(WorkflowDefinition.model_fields)
    assert known_keys(("dag",)) == ["nodes"]
    assert "handler" in known_keys(("dag", "nodes", 3))
    assert known_keys(("dag", "nodes", 0, "retry_policy"))[0] == "max_attempts"
    assert known_keys(("dag", "nodes", 0, "config")) == []
    assert known_keys(("nowhere", 1)) == []
    assert unknown_key_message(("dag", "nodes", 0, "config", "k")) == 'unknown key "k"'


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_every_example_is_valid(path: Path) -> None:
    assert len(build_plan(json.loads(path.read_text(encoding="utf-8")))) > 0
