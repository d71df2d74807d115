"""``when`` conditions (domain.conditions): grammar, precedence, JSON semantics, hostile input."""

from __future__ import annotations

import re
from typing import Any

import pytest
from domain_builders import node, problems_of, workflow

from domain.condition_parser import MAX_CONDITION_DEPTH, MAX_LIST_ITEMS
from domain.conditions import MAX_CONDITION_CHARS, Condition, ConditionResult, parse_condition
from domain.errors import ConditionError, DomainError, Problem, TemplateError
from domain.templates import Reference
from domain.validation import build_plan

DATA: dict[str, Any] = {
    "a": {
        "n": 2,
        "half": 0.5,
        "s": "hello",
        "flag": True,
        "off": False,
        "nothing": None,
        "list": [1, "two", None, [3]],
        "obj": {"k": 1, "nested": {"x": [1, 2]}},
        "empty_list": [],
        "empty_obj": {},
        "empty_s": "",
        "zero": 0,
        "long": "x" * 1000,
    },
    "workflow": {"input": {"region": "eu", "limit": 10}},
}


class Recorder:
    """A resolver over DATA that records which references were asked for."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data = DATA if data is None else data
        self.asked: list[str] = []

    def __call__(self, reference: Reference) -> Any:
        self.asked.append(reference.text)
        return reference.resolve_in(self.data)


def evaluate(text: str, data: dict[str, Any] | None = None) -> ConditionResult:
    return parse_condition(text).evaluate(Recorder(data))


def value(text: str) -> bool:
    return evaluate(text).value


def refused(text: str) -> str:
    with pytest.raises(ConditionError) as caught:
        parse_condition(text)
    return str(caught.value)


def refused_at_evaluation(text: str) -> str:
    condition = parse_condition(text)
    with pytest.raises(ConditionError) as caught:
        condition.evaluate(Recorder())
    return str(caught.value)


# -- literals -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"a\\"b" == \'a"b\'', True),
        ("'it\\'s' == \"it's\"", True),
        ('"tab\\there" == "tab\there"', True),
        ('"line\\nbreak" == "line\nbreak"', True),
        ('"back\\\\slash" == "back\\\\slash"', True),
        ('"é ✓ 日本" == "é ✓ 日本"', True),
        ("'' == \"\"", True),
        ("-2.5e1 == -25", True),
        ("0 == -0", True),
        ("1E2 == 100", True),
        ("3.0 == 3", True),
        ("true == true", True),
        ("null == null", True),
        ("[1, 'a', null] == [1.0, \"a\", null]", True),
        ("[] == []", True),
        ("[[1], [2]] == [[1], [2.0]]", True),
    ],
)
def test_literals(text: str, expected: bool) -> None:
    assert value(text) is expected


def test_a_condition_without_templates_has_no_references() -> None:
    condition = parse_condition("1 == 1")
    assert isinstance(condition, Condition)
    assert condition.references == ()
    assert condition.text == "1 == 1"


def test_references_lists_every_template_in_order() -> None:
    condition = parse_condition("{{ a.n }} > 1 and {{workflow.input.region}} in [{{ b.list[0] }}]")
    assert [r.text for r in condition.references] == [
        "{{ a.n }}",
        "{{workflow.input.region}}",
        "{{ b.list[0] }}",
    ]
    assert condition.references[0] == Reference("a", ("n",), "{{ a.n }}")
    assert condition.references[2] == Reference("b", ("list", 0), "{{ b.list[0] }}")


# -- operators ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ a.n }} == 2", True),
        ("{{ a.n }} != 2", False),
        ("{{ a.n }} < 3", True),
        ("{{ a.n }} < 2", False),
        ("{{ a.n }} <= 2", True),
        ("{{ a.n }} > 2", False),
        ("{{ a.n }} >= 2", True),
        ("{{ a.half }} < {{ a.n }}", True),
        ("'apple' < 'banana'", True),
        ("'b' >= 'a'", True),
        ("{{ a.n }} in [1, 2, 3]", True),
        ("{{ a.n }} not in [1, 2, 3]", False),
        ("'ell' in {{ a.s }}", True),
        ("'xyz' not in {{ a.s }}", True),
        ("'k' in {{ a.obj }}", True),
        ("'missing' in {{ a.obj }}", False),
        ("[3] in {{ a.list }}", True),
        ("null in {{ a.list }}", True),
        ("{{ workflow.input.region }} == 'eu'", True),
        ("true and true", True),
        ("true and false", False),
        ("false or true", True),
        ("false or false", False),
        ("not false", True),
        ("not not true", True),
        ("not {{ a.nothing }}", True),
    ],
)
def test_each_operator(text: str, expected: bool) -> None:
    assert value(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # or < and: true or (false and false)
        ("true or false and false", True),
        ("(true or false) and false", False),
        # and < not: (not false) and false
        ("not false and false", False),
        ("not (false and false)", True),
        # not < comparison: not (1 == 2)
        ("not 1 == 2", True),
        ("not {{ a.n }} in [2]", False),
        # comparison binds tighter than and/or
        ("1 == 1 and 2 == 2 or 1 == 3", True),
        ("1 == 2 or 2 == 2 and 3 == 4", False),
        ("false or false or false or true", True),
        ("true and true and true and false", False),
        ("((((1 == 1))))", True),
    ],
)
def test_precedence(text: str, expected: bool) -> None:
    assert value(text) is expected


# -- JSON semantics ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 == 1.0", True),
        ("true == 1", False),
        ("false == 0", False),
        ("1 in [true]", False),
        ("true in [1]", False),
        ("0 in [false, null]", False),
        ("null == false", False),
        ("null == 0", False),
        ("'' == null", False),
        ("'1' == 1", False),
        ("[1, 2] == [2, 1]", False),
        ("[1] == [1, 1]", False),
        ("[true] == [1]", False),
        ("{{ a.obj }} == {{ a.obj }}", True),
        ("{{ a.obj.nested }} != {{ a.obj }}", True),
        ("{{ a.list[3] }} == [3.0]", True),
    ],
)
def test_json_equality(text: str, expected: bool) -> None:
    assert value(text) is expected


def test_objects_compare_by_keys_and_values() -> None:
    data = {"x": {"o": {"a": 1, "b": [True]}, "p": {"b": [True], "a": 1.0}, "q": {"a": 1, "b": [1]}}}
    assert evaluate("{{ x.o }} == {{ x.p }}", data).value is True
    assert evaluate("{{ x.o }} == {{ x.q }}", data).value is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{ a.nothing }}", False),
        ("{{ a.off }}", False),
        ("{{ a.zero }}", False),
        ("{{ a.empty_s }}", False),
        ("{{ a.empty_list }}", False),
        ("{{ a.empty_obj }}", False),
        ("{{ a.flag }}", True),
        ("{{ a.n }}", True),
        ("{{ a.s }}", True),
        ("{{ a.list }}", True),
        ("{{ a.obj }}", True),
        ("0.0", False),
        ("'false'", True),
        ("[]", False),
        ("[null]", True),
        ("{{ a.zero }} or {{ a.empty_s }}", False),
        ("{{ a.n }} and {{ a.s }}", True),
    ],
)
def test_a_value_that_is_not_a_boolean_counts_by_json_truthiness(text: str, expected: bool) -> None:
    result = evaluate(text)
    assert result.value is expected


@pytest.mark.parametrize(
    ("text", "types"),
    [
        ("{{ a.n }} < 'x'", "number < string"),
        ("{{ a.s }} >= 1", "string >= number"),
        ("true > false", "boolean > boolean"),
        ("null <= 1", "null <= number"),
        ("{{ a.list }} < [1]", "array < array"),
        ("{{ a.obj }} > 1", "object > number"),
        ("1 < true", "number < boolean"),
    ],
)
def test_ordering_other_than_two_numbers_or_two_strings_names_both_types(text: str, types: str) -> None:
    message = refused_at_evaluation(text)
    assert f"cannot compare {types}" in message
    assert "offset" in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("1 in {{ a.s }}", "'in' a string needs a string on the left, got number"),
        ("1 in {{ a.obj }}", "'in' an object tests its keys, which are strings; got number"),
        ("1 in {{ a.n }}", "'in' needs an array, a string or an object on the right, got number"),
        ("'a' not in null", "got null"),
        ("'a' in true", "got boolean"),
    ],
)
def test_in_with_a_container_it_cannot_search_is_an_evaluation_error(text: str, fragment: str) -> None:
    assert fragment in refused_at_evaluation(text)


# -- evaluation: what is resolved, what is described ----------------------------------------------------


def test_and_or_short_circuit_so_an_unneeded_reference_is_not_resolved() -> None:
    recorder = Recorder()
    result = parse_condition("{{ a.off }} and {{ missing.x }}").evaluate(recorder)
    assert result.value is False
    assert recorder.asked == ["{{ a.off }}"]
    recorder = Recorder()
    assert parse_condition("{{ a.flag }} or {{ missing.x }}").evaluate(recorder).value is True
    assert recorder.asked == ["{{ a.flag }}"]


def test_a_missing_path_propagates_the_template_error() -> None:
    condition = parse_condition("{{ a.off }} or {{ a.nope }} == 1")
    with pytest.raises(TemplateError, match="has no key 'nope'"):
        condition.evaluate(Recorder())


def test_a_reference_used_twice_is_resolved_once() -> None:
    recorder = Recorder()
    result = parse_condition("{{ a.n }} > 1 and {{ a.n }} < 5").evaluate(recorder)
    assert result.value is True
    assert recorder.asked == ["{{ a.n }}"]
    assert result.seen == {"{{ a.n }}": 2}


def test_describe_names_the_expression_and_the_values_it_saw() -> None:
    result = evaluate("{{ a.n }} > 3")
    assert result.value is False
    assert result.seen == {"{{ a.n }}": 2}
    assert result.describe() == "condition false: {{ a.n }} > 3 (saw {{ a.n }} = 2)"
    both = evaluate("{{ a.s }} == 'hello' and {{ workflow.input.limit }} >= 10")
    assert both.describe() == (
        "condition true: {{ a.s }} == 'hello' and {{ workflow.input.limit }} >= 10 "
        '(saw {{ a.s }} = "hello", {{ workflow.input.limit }} = 10)'
    )
    assert evaluate("1 == 2").describe() == "condition false: 1 == 2"


def test_describe_shortens_long_values() -> None:
    described = evaluate("{{ a.long }} == 'y'").describe()
    assert described.startswith("condition false: {{ a.long }} == 'y' (saw {{ a.long }} = \"xxx")
    assert described.endswith("…)")
    assert len(described) < 300


# -- refused at parse time: clear errors ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty condition: expected an expression"),
        ("    \n\t ", "empty condition: expected an expression"),
        ("and and", "expected a value (a quoted string, a number, true, false, null, a template"),
        ("and and", "at offset 0, got 'and'"),
        ("true and", "at offset 8, got end of condition"),
        ("__class__", "unexpected '__class__' at offset 0: names are not allowed, use a template"),
        ("1 == foo", "unexpected 'foo' at offset 5: names are not allowed"),
        ("x.y == 1", "unexpected 'x' at offset 0: names are not allowed"),
        ("{{ a.s }}.upper", "unexpected character '.' at offset 9"),
        ("len({{ a.s }})", "unexpected 'len' at offset 0"),
        ("True", "unexpected 'True' at offset 0: write 'true' in lowercase"),
        ("None == null", "write 'null' in lowercase"),
        ("1 AND 2", "write 'and' in lowercase"),
        ('"unterminated', "unterminated string starting at offset 0"),
        ("{{ a.s }} == 'abc", "unterminated string starting at offset 13"),
        ("'ends in a backslash\\", "unterminated string starting at offset 0"),
        ("'\\q'", "unknown escape '\\q' at offset 1"),
        ("{{ a.b", "unclosed '{{' at offset 0"),
        ("{{7*7}}", "invalid template at offset 0: {{7*7}}: unexpected '*'"),
        ("1 == {{ ''.__class__ }}", "invalid template at offset 5"),
        ("{{ }}", "invalid template at offset 0"),
        ("{ a }", "unexpected '{' at offset 0: a template is written {{ node.key }}"),
        ("1 < 2 < 3", "comparisons cannot be chained (offset 6)"),
        ("1 == 1 == 1", "comparisons cannot be chained"),
        ("1 = 1", "unexpected '=' at offset 2: use '=='"),
        ("1 && 1", "use 'and'"),
        ("1 || 1", "use 'or'"),
        ("!true", "use 'not'"),
        ("(1 == 1", "expected ')' at offset 7 to close the '(' at offset 0, got end of condition"),
        ("1 == 1)", "expected 'and', 'or' or the end of the condition at offset 6, got ')'"),
        ("[1, 2", "expected ',' or ']' at offset 5 to close the '[' at offset 0"),
        ("[1, 2,]", "expected a value"),
        ("[1 2]", "expected ',' or ']' at offset 3"),
        ("1 not 2", "at offset 2, got 'not'"),
        ("1 + 1", "unexpected character '+' at offset 2"),
        ("2 * 3", "unexpected character '*' at offset 2"),
        ("- 1 == -1", "invalid number at offset 0"),
        ("01 == 1", "invalid number at offset 0"),
        ("1. == 1", "invalid number at offset 0"),
        (".5 == 0.5", "unexpected character '.' at offset 0"),
        ("1e999 > 1", "number out of range at offset 0"),
        ("1abc", "invalid number at offset 0"),
        ("é == 1", "unexpected character 'é' at offset 0"),
        ("'ok' == ok", "unexpected 'ok' at offset 8"),
        ("1 == 1 ; drop", "unexpected character ';' at offset 7"),
    ],
)
def test_refused_with_a_clear_located_error(text: str, message: str) -> None:
    assert message in refused(text)


def test_the_error_carries_its_offset() -> None:
    with pytest.raises(ConditionError) as caught:
        parse_condition("{{ a.n }} == 'x")
    assert caught.value.offset == 13
    assert isinstance(caught.value, DomainError)


# -- hostile input: clear errors, never a crash (bounded time by construction) -------------------------


def test_deep_nesting_of_ten_thousand_parentheses_is_refused() -> None:
    message = refused("(" * 10_000 + "1" + ")" * 10_000)
    assert f"over the limit of {MAX_CONDITION_CHARS}" in message


def test_nesting_past_the_depth_limit_is_refused_before_the_recursion_limit() -> None:
    deepest = "(" * MAX_CONDITION_DEPTH + "1" + ")" * MAX_CONDITION_DEPTH
    assert value(deepest) is True
    message = refused("(" * 2000 + "1" + ")" * 2000)
    depth = MAX_CONDITION_DEPTH
    assert f"condition nests deeper than {depth} levels at offset {depth}" in message
    assert "nests deeper" in refused("[" * 2000 + "]" * 2000)
    assert "nests deeper" in refused("not " * 1000 + "true")
    assert "nests deeper" in refused("(" * (MAX_CONDITION_DEPTH + 1))


def test_long_flat_chains_within_the_length_limit_are_fine() -> None:
    text = " or ".join(["0"] * 800) + " or 1"
    assert len(text) <= MAX_CONDITION_CHARS
    assert value(text) is True


def test_a_megabyte_literal_is_refused_by_length() -> None:
    message = refused('"' + "x" * 1_000_000 + '"')
    assert re.search(r"condition is 1000002 characters, over the limit of 4096", message)


def test_a_condition_at_the_length_limit_parses() -> None:
    text = "'" + "x" * (MAX_CONDITION_CHARS - 8) + "' != ''"
    assert len(text) == MAX_CONDITION_CHARS
    assert value(text) is True


def test_a_list_literal_over_the_item_limit_is_refused() -> None:
    at_limit = "[" + ",".join(["1"] * MAX_LIST_ITEMS) + "]"
    assert value(f"1 in {at_limit}") is True
    over = "[" + ",".join(["1"] * (MAX_LIST_ITEMS + 1)) + "]"
    assert f"list at offset 0 has more than {MAX_LIST_ITEMS} items" in refused(over)


def test_deeply_nested_values_compare_without_exhausting_the_stack() -> None:
    deep: Any = 1
    for _ in range(5000):
        deep = [deep]
    data = {"x": {"a": deep, "b": deep}}
    assert evaluate("{{ x.a }} == {{ x.b }}", data).value is True
    assert evaluate("{{ x.a }} in [{{ x.b }}]", data).value is True


def test_unicode_outside_strings_and_in_templates() -> None:
    assert "unexpected character" in refused("{{ a.s }} == \u2018x\u2019")
    assert "invalid template" in refused("{{ ünïcode.x }}")
    assert value("'ß' in 'straße'") is True


# -- through the definition ---------------------------------------------------------------------------


def test_a_condition_that_does_not_parse_is_a_validation_problem_at_its_path() -> None:
    raw = workflow(node("a"), node("b", ["a"], when="{{ a.n }} > 1 and __class__"))
    assert problems_of(raw) == [
        Problem(
            "$.dag.nodes[1].when",
            "unexpected '__class__' at offset 18: names are not allowed, use a template {{ node.key }} "
            "or a quoted string (node 'b')",
        )
    ]


def test_a_valid_condition_is_compiled_into_the_plan() -> None:
    plan = build_plan(workflow(node("a"), node("b", ["a"], when="{{ a.n }} in [1, 2] or not {{ a.s }}")))
    condition = plan.node("b").condition
    assert condition is not None
    assert [r.text for r in condition.references] == ["{{ a.n }}", "{{ a.s }}"]
    assert condition.evaluate(Recorder()).value is True
