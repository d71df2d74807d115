"""Validation of the workflow language's fields: conditions read only ancestors, the output mapping
reads only known nodes and the run's input, rules and policies are compiled into the plan."""

from __future__ import annotations

from domain_builders import node, problems_of, workflow

from domain.retry import RetryPolicy
from domain.trigger_rules import TriggerRule
from domain.validation import build_plan


def test_language_fields_are_compiled_into_the_plan() -> None:
    raw = workflow(
        node("a", retry_policy={"max_attempts": 3, "jitter": True, "retry_on": ["IOError"]}),
        node("b", ["a"], when="{{ a.ok }}", trigger_rule="one_failed", optional=True),
    )
    raw |= {"on_failure": "fail_fast", "timeout_seconds": 60, "output": {"x": "{{ b.x }}"}}
    plan = build_plan(raw)
    a, b = plan.nodes
    assert a.retry == RetryPolicy(3, jitter=True, retry_on=frozenset({"IOError"}))
    assert (b.trigger_rule, b.optional) == (TriggerRule.ONE_FAILED, True)
    assert b.condition is not None and b.condition.text == "{{ a.ok }}"
    assert (plan.fail_fast, plan.timeout_seconds) == (True, 60)
    assert plan.output is not None and plan.output.roots == {"b"}
    assert plan.decision_reads == {"a", "b"}  # what the run's own decisions read


def test_the_seed_shape_means_what_it_always_meant() -> None:
    plan = build_plan(workflow(node("a"), node("b", ["a"])))
    assert [spec.trigger_rule for spec in plan.nodes] == [TriggerRule.ALL_SUCCESS] * 2
    assert (plan.fail_fast, plan.timeout_seconds, plan.output, plan.decision_reads) == (
        False,
        None,
        None,
        frozenset(),
    )


def test_a_condition_may_read_only_ancestors_and_the_input() -> None:
    raw = workflow(
        node("a"),
        node("b"),
        node("c", ["a"], when="{{ b.ok }}"),
        node("d", ["a"], when="{{ workflow.other }}"),
        node("e", ["c"], when="{{ a.ok }} and {{ workflow.input.go }}"),
    )
    problems = problems_of(raw)
    assert [(p.path, p.message) for p in problems] == [
        (
            "$.dag.nodes[2].when",
            "'{{ b.ok }}' reads node 'b', which is not an ancestor of 'c'; add 'b' to its dependencies",
        ),
        ("$.dag.nodes[3].when", "node 'd': only 'workflow.input' can be read"),
    ]


def test_the_output_mapping_may_read_any_node_and_the_input_only() -> None:
    raw = workflow(node("a"))
    raw["output"] = {
        "ok": "{{ a.x }}",
        "bad": "{{ nobody.x }}",
        "in": "{{ workflow.input.k }}",
        "w": "{{ workflow.x }}",
    }
    assert [(p.path, p.message) for p in problems_of(raw)] == [
        ("$.output", "'{{ nobody.x }}' reads unknown node 'nobody'"),
        ("$.output", "'{{ workflow.x }}': only 'workflow.input' can be read"),
    ]


def test_an_unknown_trigger_rule_is_refused_naming_the_choices() -> None:
    problems = problems_of(workflow(node("a"), node("b", ["a"], trigger_rule="any_success")))
    assert [p.path for p in problems] == ["$.dag.nodes[1].trigger_rule"]
    assert "all_success" in problems[0].message and "none_failed_min_one_success" in problems[0].message
