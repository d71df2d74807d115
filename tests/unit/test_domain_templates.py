"""Templates: the reference grammar (domain.templates) and config rendering (domain.rendering)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from domain.errors import TemplateError
from domain.rendering import CompiledConfig, compile_config
from domain.templates import Reference, parse_reference, parse_string

ROOT = "$.dag.nodes[0].config"

OUTPUTS: dict[str, Any] = {
    "a": {
        "count": 3,
        "ratio": 0.5,
        "flag": False,
        "nothing": None,
        "name": "alice",
        "items": [{"name": "first"}, {"name": "second"}],
        "obj": {"k": [1, 2], "s": "é"},
        "0": "zero-key",
    },
    "b": [10, 20, 30],
    "workflow": {"input": {"user_id": 42, "tags": ["x", "y"]}},
}


def compiled(config: dict[str, Any]) -> CompiledConfig:
    result, problems = compile_config(config, ROOT)
    assert problems == []
    return result


def render(config: dict[str, Any], data: dict[str, Any] | None = None) -> dict[str, Any]:
    return compiled(config).render(OUTPUTS if data is None else data)


# -- parsing ----------------------------------------------------------------------------------------


def test_parse_reference_splits_names_keys_and_indexes() -> None:
    ref = parse_reference(" a.items[1].name ", "{{ a.items[1].name }}")
    assert ref == Reference("a", ("items", 1, "name"), "{{ a.items[1].name }}")


def test_parse_string_without_template_is_none() -> None:
    assert parse_string("plain text with { braces } and }}") is None


def test_parse_string_splits_literals_and_references() -> None:
    template = parse_string("Hi {{ a.name }}, you have {{a.count}}!")
    assert template is not None
    assert template.parts == (
        "Hi ",
        Reference("a", ("name",), "{{ a.name }}"),
        ", you have ",
        Reference("a", ("count",), "{{a.count}}"),
        "!",
    )
    assert [r.root for r in template.references] == ["a", "a"]


@pytest.mark.parametrize(
    "text",
    [
        "{{7*7}}",
        "{{ 7*7 }}",
        "{{ ''.__class__ }}",
        "{{ a.__class__() }}",
        "{{ a['k'] }}",
        "{{ a[-1] }}",
        "{{ a | safe }}",
        "{{ a + b }}",
        "{{ __import__('os').system('id') }}",
        "{{ a. }}",
        "{{ }}",
        "{{ a.b.c d }}",
    ],
)
def test_anything_but_a_plain_reference_is_a_parse_error(text: str) -> None:
    with pytest.raises(TemplateError) as caught:
        parse_string(text)
    assert str(caught.value).startswith(f"{text}: ")


def test_seven_times_seven_is_never_evaluated() -> None:
    result, problems = compile_config({"x": "{{7*7}}", "y": "{{ 7*7 }}"}, ROOT)
    assert [p.path for p in problems] == [f"{ROOT}.x", f"{ROOT}.y"]
    assert all("unexpected '*'" in p.message for p in problems)
    # the failed strings are left as plain data, never turned into 49
    assert result.render({"7": 7}) == {"x": "{{7*7}}", "y": "{{ 7*7 }}"}
    assert "49" not in repr(result.render({"7": 7}))


def test_jinja_statement_tags_are_plain_text() -> None:
    assert render({"x": "{% if a %}yes{% endif %}"}) == {"x": "{% if a %}yes{% endif %}"}


def test_unclosed_template_is_a_parse_error_with_offset() -> None:
    with pytest.raises(TemplateError, match=re.escape("unclosed '{{' at offset 5 in 'okay {{ a.b'")):
        parse_string("okay {{ a.b")


def test_compile_config_reports_each_bad_template_with_its_path() -> None:
    _, problems = compile_config(
        {"a": {"b": ["fine", "{{ x..y }}"]}, "c": "{{ 1+1 }}", "d": "{{ ok.path }}"}, ROOT
    )
    assert [p.path for p in problems] == [f"{ROOT}.a.b[1]", f"{ROOT}.c"]


def test_compile_config_collects_references_and_roots() -> None:
    config = compiled(
        {"x": "{{ a.name }}", "nested": {"list": ["{{ b[0] }}", "{{ workflow.input.user_id }}"]}}
    )
    assert [r.text for r in config.references] == [
        "{{ a.name }}",
        "{{ b[0] }}",
        "{{ workflow.input.user_id }}",
    ]
    assert config.roots == frozenset({"a", "b", "workflow"})


# -- rendering: types -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ a.count }}", 3),
        ("{{ a.ratio }}", 0.5),
        ("{{ a.flag }}", False),
        ("{{ a.nothing }}", None),
        ("{{ a.name }}", "alice"),
        ("{{ a.items }}", [{"name": "first"}, {"name": "second"}]),
        ("{{ a.obj }}", {"k": [1, 2], "s": "é"}),
        ("{{ b }}", [10, 20, 30]),
        ("{{a.count}}", 3),
        ("{{   a.count\t}}", 3),
    ],
)
def test_exact_single_template_keeps_the_json_type(template: str, expected: Any) -> None:
    value = render({"v": template})["v"]
    assert value == expected
    assert type(value) is type(expected)


def test_exact_single_template_returns_the_output_value_itself() -> None:
    # data is passed through, not re-serialised
    assert render({"v": "{{ a.obj }}"})["v"] is OUTPUTS["a"]["obj"]


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("user={{ a.name }}", "user=alice"),
        ("n={{ a.count }}", "n=3"),
        ("r={{ a.ratio }}", "r=0.5"),
        ("f={{ a.flag }}", "f=false"),
        ("z={{ a.nothing }}", "z=null"),
        ("o={{ a.obj }}", 'o={"k":[1,2],"s":"é"}'),
        ("l={{ b }}", "l=[10,20,30]"),
        (" {{ a.count }}", " 3"),
        ("{{ a.name }}{{ a.count }}", "alice3"),
        ("{{ a.name }}-{{ workflow.input.user_id }}-{{ b[2] }}", "alice-42-30"),
    ],
)
def test_template_embedded_in_text_renders_as_text(template: str, expected: str) -> None:
    assert render({"v": template}) == {"v": expected}


def test_list_indexes_and_keys_can_be_mixed() -> None:
    assert render({"v": "{{ a.items[1].name }}"}) == {"v": "second"}
    assert render({"v": "{{ a.items.0.name }}"}) == {"v": "first"}  # a numeric key indexes a list
    assert render({"v": "{{ a.0 }}"}) == {"v": "zero-key"}  # ... and is a key in an object
    assert render({"v": "{{ a.obj.k[1] }}"}) == {"v": 2}


def test_workflow_input_is_readable() -> None:
    assert render({"u": "{{ workflow.input.user_id }}", "t": "{{ workflow.input.tags[1] }}"}) == {
        "u": 42,
        "t": "y",
    }


def test_nested_dicts_and_lists_are_rendered_and_constants_kept() -> None:
    config = {
        "const": {"keep": [1, 2]},
        "n": 5,
        "nested": {"user": "{{ a.name }}", "plain": "text", "deep": {"ids": ["{{ b[0] }}", 7, "{{ b[1] }}"]}},
        "list": [{"who": "{{ a.items[0].name }}"}, "literal", ["{{ a.count }}"]],
    }
    assert render(config) == {
        "const": {"keep": [1, 2]},
        "n": 5,
        "nested": {"user": "alice", "plain": "text", "deep": {"ids": [10, 7, 20]}},
        "list": [{"who": "first"}, "literal", [3]],
    }
    # the source is never modified by rendering
    assert config["nested"]["user"] == "{{ a.name }}"
    assert config["list"][2] == ["{{ a.count }}"]


def test_rendering_twice_with_different_data_gives_independent_results() -> None:
    config = compiled({"v": "{{ a.x }}", "l": ["{{ a.x }}"]})
    first = config.render({"a": {"x": 1}})
    second = config.render({"a": {"x": 2}})
    assert first == {"v": 1, "l": [1]}
    assert second == {"v": 2, "l": [2]}
    assert first["l"] is not second["l"]


def test_config_without_templates_renders_to_an_equal_but_distinct_dict() -> None:
    source = {"url": "https://x", "n": 1, "nested": {"a": [1]}}
    config = compiled(source)
    assert config.renderer is None
    assert config.references == ()
    assert config.roots == frozenset()
    rendered = config.render({})
    assert rendered == source
    assert rendered is not source
    rendered["url"] = "changed"
    assert source["url"] == "https://x"
    assert config.render({}) is not rendered


def test_empty_config_renders_to_empty_dict() -> None:
    assert compiled({}).render({}) == {}


# -- rendering: errors ------------------------------------------------------------------------------


def _render_error(config: dict[str, Any], data: dict[str, Any] | None = None) -> str:
    with pytest.raises(TemplateError) as caught:
        render(config, data)
    return str(caught.value)


def test_missing_key_names_location_template_and_key() -> None:
    message = _render_error({"outer": {"v": "{{ a.missing }}"}})
    assert message.startswith("config.outer.v: {{ a.missing }}: 'a' has no key 'missing' (keys: ")
    assert "count" in message and "name" in message


def test_missing_key_deep_in_the_path_names_the_walked_prefix() -> None:
    message = _render_error({"v": "{{ a.items[0].age }}"})
    assert message == "config.v: {{ a.items[0].age }}: 'a.items[0]' has no key 'age' (keys: name)"


def test_missing_key_in_an_empty_object() -> None:
    message = _render_error({"v": "{{ a.x }}"}, {"a": {}})
    assert message == "config.v: {{ a.x }}: 'a' has no key 'x' (keys: none)"


def test_index_out_of_range() -> None:
    message = _render_error({"l": ["ok", "{{ b[3] }}"]})
    assert message == "config.l[1]: {{ b[3] }}: 'b' has no item 3 (length 3)"


def test_non_numeric_key_on_a_list() -> None:
    message = _render_error({"v": "{{ b.first }}"})
    assert message == "config.v: {{ b.first }}: 'b' has no item first (length 3)"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ a.name.first }}", "'a.name' is str, cannot read 'first' from it"),
        ("{{ a.count[0] }}", "'a.count' is int, cannot read '0' from it"),
        ("{{ a.nothing.x }}", "'a.nothing' is null, cannot read 'x' from it"),
        ("{{ a.flag.x }}", "'a.flag' is bool, cannot read 'x' from it"),
    ],
)
def test_reading_from_a_non_container(template: str, expected: str) -> None:
    assert _render_error({"v": template}) == f"config.v: {template}: {expected}"


def test_missing_root_output() -> None:
    message = _render_error({"v": "x {{ c.value }}"})
    assert message == "config.v: {{ c.value }}: no output from 'c'"


def test_reference_resolve_in_directly() -> None:
    ref = parse_reference("a.items[1].name", "{{ a.items[1].name }}")
    assert ref.resolve_in(OUTPUTS) == "second"
    with pytest.raises(TemplateError, match=re.escape("{{ a.items[1].name }}: no output from 'a'")):
        ref.resolve_in({})


def test_dunder_names_are_plain_keys_never_attributes() -> None:
    # '__class__' is a legal key name in the grammar, but it is looked up as a key, never as an attribute
    message = _render_error({"v": "{{ a.__class__ }}"})
    assert message.startswith("config.v: {{ a.__class__ }}: 'a' has no key '__class__'")
    assert render({"v": "{{ a.__class__ }}"}, {"a": {"__class__": "just data"}}) == {"v": "just data"}
    message = _render_error({"v": "{{ a.name.__len__ }}"})
    assert message == "config.v: {{ a.name.__len__ }}: 'a.name' is str, cannot read '__len__' from it"
