"""Typed input (domain.input_schema): the schema refused at registration, the input checked at start."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from domain_builders import node, problems_of, workflow

from domain import input_schema
from domain.errors import InvalidInput, Problem
from domain.input_schema import checked_input, schema_problems
from domain.limits import Limits
from domain.validation import build_plan, typed_input

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["user_id", "region"],
    "properties": {
        "user_id": {"type": "integer", "minimum": 1},
        "region": {"type": "string", "enum": ["eu", "us"], "default": "eu"},
        "options": {
            "type": "object",
            "default": {},
            "properties": {
                "retries": {"type": "integer", "default": 3},
                "verbose": {"type": "boolean", "default": False},
            },
        },
        "email": {"type": "string", "format": "email"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "nothing": {"type": "null", "default": None},
    },
    "additionalProperties": False,
}


def problems_of_input(schema: dict[str, Any], value: dict[str, Any]) -> list[Problem]:
    with pytest.raises(InvalidInput) as caught:
        checked_input(schema, value)
    return caught.value.problems


# -- the schema itself --------------------------------------------------------------------------------


def test_a_valid_schema_has_no_problems() -> None:
    assert schema_problems(SCHEMA, "$.input_schema") == []
    assert schema_problems({}, "$.input_schema") == []
    declared = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    assert schema_problems(declared, "$.input_schema") == []


def test_an_invalid_schema_is_refused_with_the_path_of_each_problem() -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integr"}, "m": {"minimum": "ten"}},
        "required": "n",
    }
    assert schema_problems(schema, "$.input_schema") == [
        Problem("$.input_schema.properties.m.minimum", "'ten' is not of type 'number'"),
        Problem(
            "$.input_schema.properties.n.type",
            "'integr' is not one of ['array', 'boolean', 'integer', 'null', 'number', 'object', 'string']",
        ),
        Problem("$.input_schema.required", "'n' is not of type 'array'"),
    ]


def test_only_draft_2020_12_is_accepted() -> None:
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}
    (problem,) = schema_problems(draft7, "$.input_schema")
    assert problem.path == "$.input_schema.$schema"
    assert "only draft 2020-12 is supported" in problem.message


def test_a_schema_that_cannot_accept_an_object_is_refused() -> None:
    (problem,) = schema_problems({"type": "string"}, "$.input_schema")
    assert problem == Problem(
        "$.input_schema.type", "a run's input is always a JSON object, so the schema must accept one"
    )
    assert schema_problems({"type": ["object", "null"]}, "$.input_schema") == []


def test_references_must_resolve_within_the_schema_and_are_never_fetched() -> None:
    schema = {
        "type": "object",
        "$defs": {"id": {"type": "integer"}},
        "properties": {
            "a": {"$ref": "#/$defs/id"},
            "b": {"$ref": "#/$defs/missing"},
            "c": {"$ref": "https://example.com/schema.json"},
            "d": {"const": {"$ref": "data, not a reference"}},
        },
    }
    problems = schema_problems(schema, "$.input_schema")
    assert [p.path for p in problems] == [
        "$.input_schema.properties.b.$ref",
        "$.input_schema.properties.c.$ref",
    ]
    assert problems[0].message == (
        "'#/$defs/missing' does not resolve (only references within the schema work)"
    )


def test_a_deeply_nested_or_huge_schema_is_refused_before_it_is_read() -> None:
    deep: dict[str, Any] = {"type": "object"}
    for _ in range(5000):
        deep = {"type": "object", "properties": {"x": deep}}
    (problem,) = schema_problems(deep, "$.input_schema")
    assert problem.limit == "max_nesting_depth"
    assert problem.message.startswith("input_schema nests 10001 levels, over the limit of 32")
    huge = {"type": "object", "description": "x" * 100_000}
    (problem,) = schema_problems(huge, "$.input_schema", Limits(max_config_bytes=1000))
    assert problem.limit == "max_config_bytes"


def test_a_schema_nested_to_the_limit_is_checked() -> None:
    schema: dict[str, Any] = {"type": "integer"}
    for _ in range(15):
        schema = {"type": "object", "properties": {"x": schema}}
    assert schema_problems(schema, "$.input_schema") == []


def test_a_schema_that_is_not_an_object_is_refused() -> None:
    expected = [Problem("$.input_schema", "must be a JSON Schema object")]
    assert schema_problems(True, "$.input_schema") == expected


# -- the input -------------------------------------------------------------------------------------------


def test_defaults_fill_the_input_through_nested_objects_without_touching_the_original() -> None:
    given = {"user_id": 7, "options": {"retries": 1}}
    original = copy.deepcopy(given)
    assert checked_input(SCHEMA, given) == {
        "user_id": 7,
        "region": "eu",
        "options": {"retries": 1, "verbose": False},
        "nothing": None,
    }
    assert given == original


def test_a_default_object_gets_its_own_defaults_and_is_not_shared_between_runs() -> None:
    first = checked_input(SCHEMA, {"user_id": 1})
    assert first["options"] == {"retries": 3, "verbose": False}
    first["options"]["retries"] = 99
    assert checked_input(SCHEMA, {"user_id": 2})["options"] == {"retries": 3, "verbose": False}
    assert SCHEMA["properties"]["options"]["default"] == {}


def test_a_given_value_is_kept_over_the_default() -> None:
    assert checked_input(SCHEMA, {"user_id": 1, "region": "us"})["region"] == "us"


def test_every_problem_is_listed_with_the_json_path_of_the_instance() -> None:
    problems = problems_of_input(
        SCHEMA,
        {
            "region": "mars",
            "tags": ["ok", 2, "fine", None],
            "email": "not an address",
            "options": {"retries": "three"},
            "surprise": 1,
        },
    )
    assert problems == [
        Problem("$", "Additional properties are not allowed ('surprise' was unexpected)"),
        Problem("$.email", "'not an address' is not a 'email'"),
        Problem("$.options.retries", "'three' is not of type 'integer'"),
        Problem("$.region", "'mars' is not one of ['eu', 'us']"),
        Problem("$.tags[1]", "2 is not of type 'string'"),
        Problem("$.tags[3]", "None is not of type 'string'"),
        Problem("$.user_id", "'user_id' is a required property"),
    ]


def test_every_missing_required_property_has_its_own_path() -> None:
    schema = {"type": "object", "required": ["a", "b"]}
    assert [p.path for p in problems_of_input(schema, {})] == ["$.a", "$.b"]


def test_any_of_reports_the_closest_branch() -> None:
    schema = {"type": "object", "properties": {"n": {"anyOf": [{"type": "integer"}, {"type": "null"}]}}}
    (problem,) = problems_of_input(schema, {"n": "x"})
    assert problem.path == "$.n"
    assert "is not of type" in problem.message


def test_a_huge_value_is_shortened_in_the_message() -> None:
    schema = {"type": "object", "properties": {"s": {"type": "integer"}}}
    (problem,) = problems_of_input(schema, {"s": "x" * 10_000})
    assert len(problem.message) <= 300
    assert problem.message.endswith("…")


def test_the_invalid_input_error_names_every_problem() -> None:
    with pytest.raises(InvalidInput, match=r"\$\.user_id: 'user_id' is a required property"):
        checked_input(SCHEMA, {})


# -- through the definition ---------------------------------------------------------------------------------


def test_a_definition_with_an_input_schema_keeps_it_in_its_source() -> None:
    raw = workflow(node("a", config={"user": "{{ workflow.input.user_id }}"}))
    raw["input_schema"] = SCHEMA
    plan = build_plan(raw)
    assert plan.source["input_schema"] == SCHEMA
    assert typed_input(plan, {"user_id": 3})["region"] == "eu"
    with pytest.raises(InvalidInput):
        typed_input(plan, {"user_id": 0})


def test_a_definition_without_an_input_schema_takes_any_object() -> None:
    plan = build_plan(workflow(node("a")))
    given = {"anything": [1, 2]}
    assert typed_input(plan, given) is given


def test_an_invalid_input_schema_is_reported_with_the_other_problems_of_the_definition() -> None:
    raw = workflow(node("a", ["ghost"]), {"id": "b"})
    raw["input_schema"] = {"type": "object", "properties": {"n": {"type": "integr"}}}
    paths = {p.path for p in problems_of(raw)}
    assert paths == {
        "$.input_schema.properties.n.type",
        "$.dag.nodes[1].handler",
        "$.dag.nodes[0].dependencies[0]",
    }
    only_schema = workflow(node("a"))
    only_schema["input_schema"] = {"type": "string"}
    assert [p.path for p in problems_of(only_schema)] == ["$.input_schema.type"]


def test_an_input_schema_that_is_not_an_object_is_refused_by_the_model() -> None:
    raw = workflow(node("a"))
    raw["input_schema"] = ["not", "a", "schema"]
    (problem,) = problems_of(raw)
    assert problem.path == "$.input_schema"
    assert "dictionary" in problem.message


def test_the_validator_is_compiled_once_per_distinct_schema() -> None:
    schema = {"type": "object", "properties": {"compiled_once": {"type": "integer"}}}
    before = input_schema._validator.cache_info().misses
    for _ in range(5):
        checked_input(copy.deepcopy(schema), {"compiled_once": 1})  # plans rebuilt from stored JSON
    assert input_schema._validator.cache_info().misses == before + 1


def test_a_stored_schema_whose_reference_does_not_resolve_is_a_clear_input_error() -> None:
    # Refused at registration today; a definition stored before that check could still hold one.
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/gone"}}}
    (problem,) = problems_of_input(schema, {"a": 1})
    assert problem.path == "$"
    assert problem.message.startswith("the workflow's input_schema cannot be used: ")
    assert "/$defs/gone" in problem.message
