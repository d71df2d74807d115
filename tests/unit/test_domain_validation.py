"""Validation of workflow definitions (domain.validation.build_plan) and run inputs (validate_input)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from domain_builders import node, problems_of, workflow

from domain.definition import NodeDefinition
from domain.errors import InvalidDefinition, InvalidInput, Problem
from domain.limits import Limits, nesting_depth
from domain.retry import NO_RETRY, RetryPolicy
from domain.validation import build_plan, validate_input

# -- accepted definitions ---------------------------------------------------------------------------


def test_seed_shaped_definition_compiles_into_an_indexed_plan() -> None:
    raw = {
        "name": "etl",
        "dag": {
            "nodes": [
                {"id": "extract", "handler": "http", "dependencies": [], "config": {"url": "https://x"}},
                {
                    "id": "transform",
                    "handler": "py",
                    "dependencies": ["extract"],
                    "config": {"rows": "{{ extract.rows }}"},
                },
                {"id": "audit", "handler": "log", "dependencies": ["extract"], "config": {}},
                {
                    "id": "load",
                    "handler": "db",
                    "dependencies": ["transform", "audit"],
                    "config": {"table": "t"},
                },
            ]
        },
    }
    plan = build_plan(raw)

    assert plan.name == "etl"
    assert len(plan) == 4
    assert [spec.id for spec in plan.nodes] == ["extract", "transform", "audit", "load"]
    assert plan.roots == (0,)
    assert dict(plan.index) == {"extract": 0, "transform": 1, "audit": 2, "load": 3}
    load = plan.node("load")
    assert load.index == 3
    assert load.handler == "db"
    assert load.parents == (1, 2)
    assert load.parent_ids == ("transform", "audit")
    assert load.children == ()
    assert plan.node("extract").children == (1, 2)
    assert plan.node("transform").reads == frozenset({"extract", "workflow"})
    assert load.retry == NO_RETRY
    assert load.timeout_seconds is None
    assert plan.source["dag"]["nodes"][1]["config"] == {"rows": "{{ extract.rows }}"}


def test_optional_retry_policy_and_timeout_are_compiled() -> None:
    plan = build_plan(
        workflow(
            node(
                "a",
                retry_policy={"max_attempts": 3, "initial_backoff_seconds": 0.5},
                timeout_seconds=2.5,
            ),
        )
    )
    spec = plan.node("a")
    assert spec.retry == RetryPolicy(max_attempts=3, initial_backoff_seconds=0.5)
    assert spec.retry.backoff_multiplier == 2.0
    assert spec.timeout_seconds == 2.5


def test_config_null_and_missing_config_and_dependencies_are_accepted() -> None:
    plan = build_plan(
        workflow(
            {"id": "a", "handler": "h", "dependencies": [], "config": None},
            {"id": "b", "handler": "h"},
        )
    )
    assert plan.node("a").config.source == {}
    assert plan.node("b").config.source == {}
    assert plan.node("b").parents == ()
    assert plan.roots == (0, 1)


def test_description_is_kept_in_the_source() -> None:
    raw = workflow(node("a"))
    raw["description"] = "kept"
    assert build_plan(raw).source["description"] == "kept"


def test_template_may_read_an_ancestor_that_is_not_a_direct_parent() -> None:
    plan = build_plan(
        workflow(
            node("a"),
            node("b", ["a"]),
            node("c", ["b"], config={"from_grandparent": "{{ a.value }}", "x": "{{ workflow.input.k }}"}),
        )
    )
    assert plan.node("c").reads == frozenset({"a", "b", "workflow"})


def test_known_handlers_are_accepted_when_a_registry_is_given() -> None:
    plan = build_plan(workflow(node("a", handler="http")), handlers={"http", "noop"})
    assert plan.node("a").handler == "http"


def test_definition_order_is_free_a_child_may_be_listed_before_its_parent() -> None:
    plan = build_plan(workflow(node("child", ["parent"]), node("parent")))
    assert plan.roots == (1,)
    assert plan.node("child").parents == (1,)


# -- graph problems ---------------------------------------------------------------------------------


def test_duplicate_node_id() -> None:
    problems = problems_of(workflow(node("a"), node("b"), node("a")))
    assert problems == [
        Problem("$.dag.nodes[2].id", "duplicate node id 'a' (first defined at $.dag.nodes[0])"),
    ]


def test_unknown_dependency() -> None:
    problems = problems_of(workflow(node("a"), node("b", ["a", "ghost"])))
    assert problems == [Problem("$.dag.nodes[1].dependencies[1]", "node 'b' depends on unknown node 'ghost'")]


def test_self_dependency() -> None:
    problems = problems_of(workflow(node("a"), node("b", ["b"])))
    assert problems == [Problem("$.dag.nodes[1].dependencies[0]", "node 'b' depends on itself")]


def test_dependency_listed_twice() -> None:
    problems = problems_of(workflow(node("a"), node("b", ["a", "a"])))
    assert problems == [Problem("$.dag.nodes[1].dependencies[1]", "node 'b' lists dependency 'a' twice")]


def _cycle_names(message: str) -> list[str]:
    assert message.startswith("dependency cycle: "), message
    names = message.removeprefix("dependency cycle: ").split(" (")[0]
    return names.split(" -> ")


def _assert_is_real_cycle(raw: dict[str, Any], names: list[str]) -> None:
    """Each node depends on the one before it, and the cycle closes on its first node."""
    deps = {n["id"]: set(n.get("dependencies", [])) for n in raw["dag"]["nodes"]}
    assert names[0] == names[-1]
    assert len(set(names[:-1])) == len(names) - 1
    for before, after in itertools.pairwise(names):
        assert before in deps[after], f"{after} does not depend on {before}"


def test_three_node_cycle_is_named() -> None:
    raw = workflow(node("a", ["c"]), node("b", ["a"]), node("c", ["b"]))
    problems = problems_of(raw)
    assert len(problems) == 1
    problem = problems[0]
    assert problem.path.startswith("$.dag.nodes[") and problem.path.endswith("].dependencies")
    names = _cycle_names(problem.message)
    assert sorted(names[:-1]) == ["a", "b", "c"]
    _assert_is_real_cycle(raw, names)
    # the reported path is the node the cycle closes on
    index = [n["id"] for n in raw["dag"]["nodes"]].index(names[-1])
    assert problem.path == f"$.dag.nodes[{index}].dependencies"
    assert problem.message.endswith("(each node depends on the one before it)")


def test_three_node_cycle_exact_message() -> None:
    problems = problems_of(workflow(node("a", ["c"]), node("b", ["a"]), node("c", ["b"])))
    assert problems == [
        Problem(
            "$.dag.nodes[1].dependencies",
            "dependency cycle: b -> c -> a -> b (each node depends on the one before it)",
        )
    ]


def test_two_node_cycle_is_named() -> None:
    raw = workflow(node("a", ["b"]), node("b", ["a"]))
    problems = problems_of(raw)
    assert len(problems) == 1
    names = _cycle_names(problems[0].message)
    assert sorted(names[:-1]) == ["a", "b"]
    _assert_is_real_cycle(raw, names)


def test_cycle_with_a_tail_names_only_the_cycle() -> None:
    # "tail" hangs off the a <-> b cycle; "root" and "ok" are fine.
    raw = workflow(
        node("root"),
        node("tail", ["b"]),
        node("a", ["b", "root"]),
        node("b", ["a"]),
        node("ok", ["root"]),
    )
    problems = problems_of(raw)
    assert len(problems) == 1
    names = _cycle_names(problems[0].message)
    assert sorted(names[:-1]) == ["a", "b"]
    assert "tail" not in names and "root" not in names
    _assert_is_real_cycle(raw, names)


def test_two_separate_cycles_are_both_reported() -> None:
    raw = workflow(node("a", ["b"]), node("b", ["a"]), node("x", ["z"]), node("y", ["x"]), node("z", ["y"]))
    problems = problems_of(raw)
    cycles = sorted(sorted(_cycle_names(p.message)[:-1]) for p in problems)
    assert cycles == [["a", "b"], ["x", "y", "z"]]
    for problem in problems:
        _assert_is_real_cycle(raw, _cycle_names(problem.message))


def test_reserved_id_workflow() -> None:
    problems = problems_of(workflow(node("workflow")))
    assert problems == [Problem("$.dag.nodes[0].id", "'workflow' is a reserved name")]


def test_unknown_handler_when_registry_is_given() -> None:
    problems = problems_of(workflow(node("a", handler="http"), node("b", handler="smtp")), handlers=["http"])
    assert problems == [
        Problem("$.dag.nodes[1].handler", "node 'b' uses unknown handler 'smtp' (known: http)")
    ]


def test_any_handler_is_accepted_without_a_registry() -> None:
    build_plan(workflow(node("a", handler="anything.at_all")))


# -- template problems ------------------------------------------------------------------------------


def test_template_reading_a_non_ancestor_is_refused() -> None:
    problems = problems_of(workflow(node("a"), node("b"), node("c", ["a"], config={"x": "{{ b.out }}"})))
    assert problems == [
        Problem(
            "$.dag.nodes[2].config",
            "'{{ b.out }}' reads node 'b', which is not an ancestor of 'c'; add 'b' to its dependencies",
        )
    ]


def test_template_reading_a_descendant_is_refused() -> None:
    problems = problems_of(workflow(node("a", config={"x": "{{ b.out }}"}), node("b", ["a"])))
    assert len(problems) == 1
    assert problems[0].path == "$.dag.nodes[0].config"
    assert "not an ancestor of 'a'" in problems[0].message


def test_template_reading_an_unknown_node_is_refused() -> None:
    problems = problems_of(workflow(node("a", config={"x": "{{ ghost.out }}"})))
    assert problems == [Problem("$.dag.nodes[0].config", "node 'a' reads unknown node 'ghost' in a template")]


def test_template_reading_its_own_output_is_refused() -> None:
    problems = problems_of(workflow(node("a", config={"x": "{{ a.out }}"})))
    assert problems == [Problem("$.dag.nodes[0].config", "node 'a' cannot read its own output in a template")]


@pytest.mark.parametrize("template", ["{{ workflow.secret }}", "{{ workflow }}", "{{ workflow[0] }}"])
def test_only_workflow_input_may_be_read(template: str) -> None:
    problems = problems_of(workflow(node("a", config={"x": template})))
    assert problems == [Problem("$.dag.nodes[0].config", "node 'a': only 'workflow.input' can be read")]


def test_workflow_input_itself_may_be_read() -> None:
    plan = build_plan(workflow(node("a", config={"all": "{{ workflow.input }}"})))
    assert plan.node("a").config.roots == frozenset({"workflow"})


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("{{ 7*7 }}", "unexpected '*'"),
        ("{{7*7}}", "unexpected '*'"),
        ("{{ ''.__class__ }}", "expected a reference like 'node_id.path'"),
        ("{{ a.__class__.__mro__ }}", None),  # valid syntax, refused later as own output
        ("{{ }}", "expected a reference like 'node_id.path'"),
        ("{{ a.b() }}", "unexpected '('"),
        ("{{ a | upper }}", "unexpected ' '"),
        ("{{ a[x] }}", "unexpected '['"),
        ("{{ a. }}", "expected a key after '.'"),
    ],
)
def test_template_syntax_errors_are_located(template: str, fragment: str | None) -> None:
    problems = problems_of(workflow(node("a", config={"deep": {"list": ["ok", template]}})))
    assert len(problems) == 1
    if fragment is None:
        assert problems[0] == Problem(
            "$.dag.nodes[0].config", "node 'a' cannot read its own output in a template"
        )
        return
    assert problems[0].path == "$.dag.nodes[0].config.deep.list[1]"
    assert fragment in problems[0].message
    assert problems[0].message.endswith("(node 'a')")


def test_unclosed_template_is_located() -> None:
    problems = problems_of(workflow(node("a"), node("b", ["a"], config={"url": "https://x/{{ a.id"})))
    assert problems == [
        Problem("$.dag.nodes[1].config.url", "unclosed '{{' at offset 10 in 'https://x/{{ a.id' (node 'b')")
    ]


# -- schema problems --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ([node("a")], "an array"),
        ("workflow", "a string"),
        (None, "null"),
        (True, "a boolean"),
        (42, "a number"),
        (1.5, "a number"),
    ],
)
def test_top_level_must_be_an_object(raw: Any, kind: str) -> None:
    assert problems_of(raw) == [Problem("$", f"a workflow must be a JSON object, got {kind}")]


@pytest.mark.parametrize("bad_id", ["has space", "dot.ted", "", "x" * 129, "é", "a{b}", "new\nline"])
def test_bad_node_id_characters(bad_id: str) -> None:
    problems = problems_of(workflow(node(bad_id)))
    assert len(problems) == 1
    assert problems[0].path == "$.dag.nodes[0].id"
    assert "node id must be 1 to 128 letters, digits, '_' or '-'" in problems[0].message
    assert problems[0].message.endswith(f"(node '{bad_id}')")


def test_node_id_of_128_allowed_characters_is_accepted() -> None:
    long_id = ("Ab-_9" * 30)[:128]
    assert build_plan(workflow(node(long_id))).node(long_id).id == long_id


def test_missing_node_fields() -> None:
    problems = problems_of(workflow({"id": "a"}, {"handler": "h"}))
    assert problems == [
        Problem("$.dag.nodes[0].handler", "missing required field 'handler' (node 'a')"),
        Problem("$.dag.nodes[1].id", "missing required field 'id'"),
    ]


def test_unknown_node_field() -> None:
    problems = problems_of(workflow(node("a", colour="blue")))
    known = ", ".join(NodeDefinition.model_fields)
    assert known.startswith("id, handler, dependencies, config, retry_policy, timeout_seconds")
    assert problems == [
        Problem(
            "$.dag.nodes[0].colour",
            f'unknown key "colour"; known keys: {known} (keys starting with "x-" are free for your own use) '
            "(node 'a')",
        )
    ]


def test_unknown_retry_policy_field_and_bad_values() -> None:
    problems = problems_of(
        workflow(
            node("a", retry_policy={"max_attempts": 0}),
            node("b", retry_policy={"attempts": 3}),
            node("c", timeout_seconds=0),
        )
    )
    paths = [p.path for p in problems]
    assert paths == [
        "$.dag.nodes[0].retry_policy.max_attempts",
        "$.dag.nodes[1].retry_policy.attempts",
        "$.dag.nodes[2].timeout_seconds",
    ]
    assert problems[0].message.endswith("(node 'a')")
    assert problems[1].message == 'unknown key "attempts"; did you mean "max_attempts"? (node \'b\')'
    assert "greater than 0" in problems[2].message


def test_missing_top_level_fields() -> None:
    assert problems_of({"dag": {"nodes": [node("a")]}}) == [
        Problem("$.name", "missing required field 'name'")
    ]
    assert problems_of({"name": "w"}) == [Problem("$.dag", "missing required field 'dag'")]


def test_empty_node_list_is_refused() -> None:
    problems = problems_of({"name": "w", "dag": {"nodes": []}})
    assert [p.path for p in problems] == ["$.dag.nodes"]


def test_wrong_field_types_are_located() -> None:
    problems = problems_of(
        workflow(
            {"id": "a", "handler": "h", "dependencies": "b"},
            {"id": "b", "handler": "h", "config": ["not", "an", "object"]},
            {"id": "c", "handler": "h", "dependencies": [1]},
            "not a node",
        )
    )
    assert [p.path for p in problems] == [
        "$.dag.nodes[0].dependencies",
        "$.dag.nodes[1].config",
        "$.dag.nodes[2].dependencies[0]",
        "$.dag.nodes[3]",
    ]
    assert problems[0].message.endswith("(node 'a')")
    assert problems[1].message.endswith("(node 'b')")
    assert problems[2].message.endswith("(node 'c')")


# -- limits -----------------------------------------------------------------------------------------


def test_max_nodes() -> None:
    raw = workflow(node("a"), node("b"), node("c"))
    assert build_plan(raw, limits=Limits(max_nodes=3))
    assert problems_of(raw, limits=Limits(max_nodes=2)) == [
        Problem("$.dag.nodes", "3 nodes exceed the limit of 2", "max_nodes")
    ]


def test_max_edges() -> None:
    raw = workflow(node("a"), node("b"), node("c", ["a", "b"]), node("d", ["c"]))
    assert build_plan(raw, limits=Limits(max_edges=3))
    assert problems_of(raw, limits=Limits(max_edges=2)) == [
        Problem("$.dag.nodes", "3 dependencies exceed the limit of 2", "max_edges")
    ]


def test_max_config_bytes() -> None:
    config = {"text": "x" * 20}
    size = len(json.dumps(config, separators=(",", ":")).encode())
    raw = workflow(node("a", config=config))
    assert build_plan(raw, limits=Limits(max_config_bytes=size))
    assert problems_of(raw, limits=Limits(max_config_bytes=size - 1)) == [
        Problem(
            "$.dag.nodes[0].config",
            f"config of node 'a' is {size} bytes, over the limit of {size - 1}",
            "max_config_bytes",
        )
    ]


def test_max_config_bytes_counts_utf8_bytes() -> None:
    config = {"t": "é"}  # {"t":"é"} is 9 characters but 10 bytes
    raw = workflow(node("a", config=config))
    assert build_plan(raw, limits=Limits(max_config_bytes=10))
    assert problems_of(raw, limits=Limits(max_config_bytes=9))[0].message.startswith(
        "config of node 'a' is 10 bytes"
    )


def _nested(depth: int) -> dict[str, Any]:
    """A config whose nesting depth (objects and arrays, the config itself included) is ``depth``."""
    value: Any = 1
    for level in range(depth - 1):
        value = {"k": value} if level % 2 else [value]
    return {"root": value}


def test_nesting_depth_helper_counts_objects_and_arrays() -> None:
    assert nesting_depth(1) == 0
    assert nesting_depth({}) == 1
    assert nesting_depth({"a": [1, {"b": []}]}) == 4
    for depth in (1, 2, 5, 33):
        assert nesting_depth(_nested(depth)) == depth


def test_max_nesting_depth() -> None:
    raw = workflow(node("a", config=_nested(5)))
    assert build_plan(raw, limits=Limits(max_nesting_depth=5))
    assert problems_of(raw, limits=Limits(max_nesting_depth=4)) == [
        Problem(
            "$.dag.nodes[0].config",
            "config of node 'a' nests 5 levels, over the limit of 4",
            "max_nesting_depth",
        )
    ]


def test_hostile_deep_config_is_refused_not_a_crash() -> None:
    depth = 600
    text = (
        '{"name":"w","dag":{"nodes":[{"id":"a","handler":"h","config":'
        + '{"k":' * depth
        + "1"
        + "}" * depth
        + "}]}}"
    )
    raw = json.loads(text)  # the JSON parser itself accepts this depth
    problems = problems_of(raw)
    assert problems[0].path == "$.dag.nodes[0].config"
    assert "nests" in problems[0].message


# -- several problems at once -----------------------------------------------------------------------


def test_every_graph_problem_is_reported_in_one_error() -> None:
    raw = workflow(
        node("workflow"),
        node("a", ["a"]),
        node("b", ["ghost", "c", "c"]),
        node("c", ["b"], config={"x": "{{ 7*7 }}", "y": "{{ nobody.x }}"}),
        node("a", handler="mystery"),
        node("d", config={"x": "{{ b.x }}"}),
    )
    with pytest.raises(InvalidDefinition) as caught:
        build_plan(raw, handlers={"noop"})
    problems = caught.value.problems
    paths_and_fragments = [
        ("$.dag.nodes[0].id", "'workflow' is a reserved name"),
        ("$.dag.nodes[4].id", "duplicate node id 'a'"),
        ("$.dag.nodes[1].dependencies[0]", "node 'a' depends on itself"),
        ("$.dag.nodes[2].dependencies[0]", "node 'b' depends on unknown node 'ghost'"),
        ("$.dag.nodes[2].dependencies[2]", "node 'b' lists dependency 'c' twice"),
        ("$.dag.nodes[3].config.x", "unexpected '*'"),
        ("$.dag.nodes[4].handler", "node 'a' uses unknown handler 'mystery'"),
        ("$.dag.nodes[3].dependencies", "dependency cycle: "),
        ("$.dag.nodes[3].config", "node 'c' reads unknown node 'nobody'"),
        ("$.dag.nodes[5].config", "'{{ b.x }}' reads node 'b', which is not an ancestor of 'd'"),
    ]
    assert len(problems) == len(paths_and_fragments), problems
    for path, fragment in paths_and_fragments:
        assert any(p.path == path and fragment in p.message for p in problems), (path, fragment, problems)
    text = str(caught.value)
    assert text.startswith(f"invalid workflow definition ({len(problems)} problem(s)):")
    assert all(str(p) in text for p in problems)


def test_every_schema_problem_is_reported_in_one_error() -> None:
    problems = problems_of(
        {
            "dag": {
                "nodes": [
                    {"id": "bad id", "handler": "h"},
                    {"id": "b"},
                    {"id": "c", "handler": "h", "extra": 1},
                ]
            }
        }
    )
    assert [p.path for p in problems] == [
        "$.name",
        "$.dag.nodes[0].id",
        "$.dag.nodes[1].handler",
        "$.dag.nodes[2].extra",
    ]


def test_schema_and_graph_problems_are_reported_together() -> None:
    problems = problems_of(workflow({"id": "a"}, node("b", ["c"]), node("c", ["b"]), node("d", ["ghost"])))
    paths = {p.path for p in problems}
    assert "$.dag.nodes[0].handler" in paths
    assert "$.dag.nodes[3].dependencies[0]" in paths
    assert any(p.message.startswith("dependency cycle: ") for p in problems)


def test_a_dependency_on_a_malformed_node_is_not_called_unknown() -> None:
    problems = problems_of(workflow({"id": "a"}, node("e", ["a"])))
    assert [p.path for p in problems] == ["$.dag.nodes[0].handler"]


def test_problem_str_is_path_then_message() -> None:
    assert str(Problem("$.a", "broken")) == "$.a: broken"


# -- run input --------------------------------------------------------------------------------------


def test_validate_input_returns_the_object() -> None:
    data = {"user_id": 7, "tags": ["x"]}
    assert validate_input(data) is data
    assert validate_input({}) == {}


@pytest.mark.parametrize(
    ("raw", "kind"), [([1, 2], "an array"), ("x", "a string"), (None, "null"), (3, "a number")]
)
def test_validate_input_refuses_non_objects(raw: Any, kind: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_input(raw)
    assert caught.value.problems == [Problem("$", f"run input must be a JSON object, got {kind}")]


def test_validate_input_refuses_oversized_input() -> None:
    data = {"blob": "x" * 100}
    size = len(json.dumps(data, separators=(",", ":")).encode())
    assert validate_input(data, Limits(max_input_bytes=size)) is data
    with pytest.raises(InvalidInput) as caught:
        validate_input(data, Limits(max_input_bytes=size - 1))
    assert caught.value.problems == [
        Problem("$", f"run input is {size} bytes, over the limit of {size - 1}", "max_input_bytes"),
    ]
    assert str(caught.value) == f"$: run input is {size} bytes, over the limit of {size - 1}"
