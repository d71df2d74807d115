"""Hostile input, fuzzed: the condition grammar, the template grammar and the definition parser get
random input built from their own tokens (so that deep, almost-valid input is common) and from
arbitrary text. Whatever they get, they answer with a parse or their own error: never another
exception (a traceback in front of a user), and every refused definition names a JSON path.

``FUZZ_PARSER_EXAMPLES`` sets the examples per test (CI: the default, a few seconds in all); the whole
test is bounded by pytest-timeout, so a hang fails it.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.conditions import parse_condition
from domain.errors import ConditionError, InvalidDefinition, TemplateError
from domain.templates import parse_string
from domain.validation import build_plan

EXAMPLES = int(os.environ.get("FUZZ_PARSER_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))

CONDITION_TOKENS = [
    "{{ a.x }}",
    "{{ workflow.input.k }}",
    "{{",
    "}}",
    "{{ a[0] }}",
    "{{7*7}}",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "in",
    "not",
    "and",
    "or",
    "(",
    ")",
    "[",
    "]",
    ",",
    "'text'",
    '"te\\"xt"',
    "'unterminated",
    "1",
    "-2.5e3",
    "1e999",
    "true",
    "false",
    "null",
    "True",
    "None",
    "__class__",
    "x.y",
    "\\",
    "\x00",
    "é",
]
condition_text = st.one_of(
    st.lists(st.sampled_from(CONDITION_TOKENS), max_size=40).map(" ".join),
    st.lists(st.sampled_from(CONDITION_TOKENS), max_size=40).map("".join),
    st.text(max_size=200),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=10,
)


@pytest.mark.timeout(120)
@FUZZ
@given(text=condition_text, values=st.dictionaries(st.sampled_from(["a", "workflow"]), JSON_VALUES))
def test_a_condition_parses_or_is_refused_and_evaluates_or_is_refused(
    text: str, values: dict[str, Any]
) -> None:
    try:
        condition = parse_condition(text)
    except ConditionError as error:
        assert str(error)
        return
    except TemplateError as error:
        assert str(error)
        return
    try:
        result = condition.evaluate(lambda ref: ref.resolve_in(values))
    except (ConditionError, TemplateError) as error:
        assert str(error)
        return
    assert isinstance(result.value, bool)
    assert isinstance(result.describe(), str)


@pytest.mark.timeout(120)
@FUZZ
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.lists(st.sampled_from(["{{", "}}", " a", ".b", "[0]", "[x]", "workflow", "{", "}", "-"])).map(
            "".join
        ),
    )
)
def test_a_template_string_parses_or_is_refused(text: str) -> None:
    try:
        parse_string(text)
    except TemplateError as error:
        assert str(error)


def _node(draw: st.DrawFn, ids: list[str]) -> Any:
    value: dict[str, Any] = {
        "id": draw(st.sampled_from([*ids, "", "workflow", "bad id", 7])),
        "handler": draw(st.sampled_from(["noop", "", None, 3])),
    }
    optional = {
        "dependencies": st.lists(st.sampled_from([*ids, "ghost", 1]), max_size=3),
        "config": st.one_of(JSON_VALUES, st.just({"url": "{{ n0.x }}"}), st.just({"t": "{{ ghost.y }}"})),
        "when": condition_text,
        "trigger_rule": st.sampled_from(["all_success", "one_failed", "nope", 1]),
        "optional": st.sampled_from([True, False, "yes"]),
        "retry_policy": st.one_of(
            st.just({"max_attempts": 3, "jitter": True}), st.just({"max_attemps": 2}), JSON_VALUES
        ),
        "timeout_seconds": st.sampled_from([1, 0, -1, "10", 1e9]),
        "x-note": JSON_VALUES,
        "dependecies": st.just([]),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            value[key] = draw(strategy)
    return value


@st.composite
def definitions(draw: st.DrawFn) -> Any:
    ids = [f"n{i}" for i in range(draw(st.integers(0, 6)))]
    raw: dict[str, Any] = {
        "name": draw(st.sampled_from(["fuzz", "", 5])),
        "dag": {"nodes": [_node(draw, ids) for _ in ids]},
    }
    extras = {
        "on_failure": st.sampled_from(["fail_fast", "continue", "explode"]),
        "output": st.one_of(st.just({"r": "{{ n0.x }}"}), st.just({"r": "{{ ghost }}"}), JSON_VALUES),
        "timeout_seconds": st.sampled_from([5, 0, "x"]),
        "input_schema": st.one_of(st.just({"type": "object"}), st.just({"type": "integr"}), JSON_VALUES),
        "outptu": JSON_VALUES,
    }
    for key, strategy in extras.items():
        if draw(st.booleans()):
            raw[key] = draw(strategy)
    return draw(st.one_of(st.just(raw), JSON_VALUES))


@pytest.mark.timeout(180)
@FUZZ
@given(raw=definitions())
def test_a_definition_compiles_or_every_problem_names_a_path(raw: Any) -> None:
    try:
        build_plan(raw)
    except InvalidDefinition as error:
        assert error.problems
        for problem in error.problems:
            assert problem.path.startswith("$"), problem
            assert problem.message, problem
