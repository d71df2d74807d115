"""``domain.plain_nodes``: the quick way through the schema gives the plan pydantic's way gives.

Both ways run on every definition here: the plans (nodes, index, roots, source in its key order,
run policy) must be equal; the refused ones must be refused with the very same problems.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from bench.dags import layered_dag
from domain.definition import NodeDefinition
from domain.errors import InvalidDefinition
from domain.limits import DEFAULT_LIMITS
from domain.plain_nodes import PlainNode, quick_definition
from domain.plan import WorkflowPlan
from domain.validation import _build_plan

ACCEPTED: list[dict[str, Any]] = [
    {"name": "one", "dag": {"nodes": [{"id": "a", "handler": "h"}]}},
    {
        "name": "mixed",
        "description": "plain and rich nodes together",
        "on_failure": "fail_fast",
        "timeout_seconds": 30,
        "output": {"total": "{{ c.total }}", "who": "{{ workflow.input.user }}"},
        "x-owner": "team",
        "dag": {
            "x-note": "dropped",
            "nodes": [
                {"id": "a", "handler": "h", "dependencies": [], "config": None},
                {"id": "b", "handler": "h", "dependencies": ["a"], "config": {"n": [1, 2.5, None, True]}},
                {"id": "c", "handler": "h", "dependencies": ["b"], "config": {"x": "{{ a.rows }}"}},
                {"id": "d", "handler": "h", "dependencies": ["c"], "x-ui": {"color": "red"}},
                {
                    "id": "e",
                    "handler": "h",
                    "dependencies": ["a", "d"],
                    "retry_policy": {"max_attempts": 3, "retry_on": ["ValueError"]},
                    "timeout_seconds": 5,
                    "when": "{{ a.ok }} == true",
                    "trigger_rule": "all_done",
                    "optional": True,
                },
            ],
        },
    },
    {
        "name": "map",
        "dag": {
            "nodes": [
                {"id": "a", "handler": "h"},
                {
                    "id": "m",
                    "handler": "h",
                    "dependencies": ["a"],
                    "for_each": "{{ a.items }}",
                    "max_concurrency": 4,
                },
                {"id": "z", "handler": "h", "dependencies": ["m"], "config": {"all": "{{ m }}"}},
            ]
        },
    },
    {
        "name": "limited",
        "dag": {
            "nodes": [
                {"id": "a", "handler": "h"},
                {"id": "b", "handler": "h", "dependencies": ["a"], "concurrency_key": "db-{{ a.shard }}"},
                {"id": "c", "handler": "h", "concurrency_key": "db", "concurrency_limit": 2},
            ]
        },
    },
    # listed before its parent: the cycle check must not be skipped on order alone
    {
        "name": "late",
        "dag": {"nodes": [{"id": "b", "handler": "h", "dependencies": ["a"]}, {"id": "a", "handler": "h"}]},
    },
    {"name": "typed", "input_schema": {"type": "object"}, "dag": {"nodes": [{"id": "a", "handler": "h"}]}},
    layered_dag(500, seed=3),
]

REFUSED: list[Any] = [
    {
        "name": "cycle",
        "dag": {
            "nodes": [
                {"id": "a", "handler": "h", "dependencies": ["b"]},
                {"id": "b", "handler": "h", "dependencies": ["a"]},
            ]
        },
    },
    {
        "name": "twice",
        "dag": {
            "nodes": [{"id": "a", "handler": "h"}, {"id": "b", "handler": "h", "dependencies": ["a", "a"]}]
        },
    },
    {"name": "self", "dag": {"nodes": [{"id": "a", "handler": "h", "dependencies": ["a"]}]}},
    {"name": "unknown", "dag": {"nodes": [{"id": "a", "handler": "h", "dependencies": ["zz"]}]}},
    {"name": "dup", "dag": {"nodes": [{"id": "a", "handler": "h"}, {"id": "a", "handler": "h"}]}},
    {"name": "reserved", "dag": {"nodes": [{"id": "workflow", "handler": "h"}]}},
    {"name": "handler", "dag": {"nodes": [{"id": "a", "handler": ""}]}},
    {"name": "id", "dag": {"nodes": [{"id": "a b", "handler": "h"}]}},
    {"name": "deps null", "dag": {"nodes": [{"id": "a", "handler": "h", "dependencies": None}]}},
    {"name": "deps ints", "dag": {"nodes": [{"id": "a", "handler": "h", "dependencies": [1]}]}},
    {"name": "config list", "dag": {"nodes": [{"id": "a", "handler": "h", "config": []}]}},
    {"name": "typo", "dag": {"nodes": [{"id": "a", "handler": "h", "dependecies": []}]}},
    {"name": "no handler", "dag": {"nodes": [{"id": "a"}]}},
    {"name": "", "dag": {"nodes": [{"id": "a", "handler": "h"}]}},
    {"name": "top typo", "dga": {}, "dag": {"nodes": [{"id": "a", "handler": "h"}]}},
    {
        "name": "template",
        "dag": {
            "nodes": [{"id": "a", "handler": "h", "config": {"x": "{{ b.y }}"}}, {"id": "b", "handler": "h"}]
        },
    },
    {"name": "retry", "dag": {"nodes": [{"id": "a", "handler": "h", "retry_policy": {"max_attempts": 0}}]}},
    {"name": "when", "dag": {"nodes": [{"id": "a", "handler": "h", "when": "(("}]}},
    {"name": "output", "output": {"x": "{{ nope.y }}"}, "dag": {"nodes": [{"id": "a", "handler": "h"}]}},
    {"name": "secret", "dag": {"nodes": [{"id": "a", "handler": "h", "when": "{{ secrets.k }} == 1"}]}},
    {"name": "secrets id", "dag": {"nodes": [{"id": "secrets", "handler": "h"}]}},
    {"name": "stray limit", "dag": {"nodes": [{"id": "a", "handler": "h", "concurrency_limit": 2}]}},
    {"name": "stray cap", "dag": {"nodes": [{"id": "a", "handler": "h", "max_concurrency": 2}]}},
    {"name": "map of nothing", "dag": {"nodes": [{"id": "m", "handler": "h", "for_each": "{{ b.items }}"}]}},
]


def test_a_plain_node_has_every_field_of_the_schema_with_its_default() -> None:
    """A field the schema gains must be added to ``PlainNode`` too (with the same default)."""
    plain = {field.name: field.default for field in dataclasses.fields(PlainNode)}
    assert set(plain) == set(NodeDefinition.model_fields)
    for name, info in NodeDefinition.model_fields.items():
        if info.default_factory is None and not info.is_required():
            assert plain[name] == info.default, name


def _slow(raw: Any) -> WorkflowPlan:
    return _build_plan(raw, DEFAULT_LIMITS, frozenset({"h", "noop"}), quick=False)


def _quick(raw: Any) -> WorkflowPlan:
    return _build_plan(raw, DEFAULT_LIMITS, frozenset({"h", "noop"}), quick=True)


@pytest.mark.parametrize("raw", ACCEPTED, ids=lambda raw: raw["name"])
def test_an_accepted_definition_compiles_to_the_same_plan_both_ways(raw: dict[str, Any]) -> None:
    assert quick_definition(raw, raw["dag"]["nodes"]) is not None  # the quick way was taken
    quick, slow = _quick(raw), _slow(raw)
    assert quick.nodes == slow.nodes
    assert dict(quick.index) == dict(slow.index)
    assert quick.roots == slow.roots
    assert json.dumps(quick.source) == json.dumps(slow.source)  # same content, same key order
    assert (quick.fail_fast, quick.timeout_seconds, quick.output, quick.decision_reads) == (
        slow.fail_fast,
        slow.timeout_seconds,
        slow.output,
        slow.decision_reads,
    )


@pytest.mark.parametrize("raw", REFUSED, ids=lambda raw: raw["name"] or "empty name")
def test_a_refused_definition_has_the_same_problems_both_ways(raw: Any) -> None:
    with pytest.raises(InvalidDefinition) as quick:
        _quick(raw)
    with pytest.raises(InvalidDefinition) as slow:
        _slow(raw)
    assert quick.value.problems == slow.value.problems
    assert quick.value.problems


def test_the_plan_shares_what_pydantics_way_shares_with_the_submitted_definition() -> None:
    def submitted() -> dict[str, Any]:
        return {
            "name": "w",
            "dag": {
                "nodes": [
                    {"id": "a", "handler": "h", "config": {"k": [1]}},
                    {"id": "b", "handler": "h", "dependencies": ["a"]},
                ]
            },
        }

    plans = []
    for build in (_quick, _slow):
        raw = submitted()
        plan = build(raw)
        raw["dag"]["nodes"][1]["dependencies"].append("c")
        raw["dag"]["nodes"][0]["config"]["k"].append(2)
        raw["dag"]["nodes"][0]["config"]["extra"] = 1
        assert plan.source["dag"]["nodes"][1]["dependencies"] == ["a"]
        assert plan.source["dag"]["nodes"][0]["config"] == {"k": [1]}
        plans.append(plan)
    quick, slow = plans
    assert quick.nodes == slow.nodes
