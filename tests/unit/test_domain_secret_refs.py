"""``{{ secrets.NAME }}`` in the domain: where validation allows it, and how a config renders it from
the lookup it is given (the domain never holds a value)."""

from __future__ import annotations

from typing import Any

import pytest
from domain_builders import node, plan_of, problems_of, workflow

from domain.errors import Problem, TemplateError
from domain.rendering import compile_config
from domain.secret_refs import SecretUnavailable

SECRETS = {"api_token": "t0ken", "db-password": "pw"}


def lookup(name: str) -> str:
    try:
        return SECRETS[name]
    except KeyError:
        raise SecretUnavailable(name, "not in the test's secrets") from None


def rendered(config: dict[str, Any], data: dict[str, Any] | None = None) -> dict[str, Any]:
    compiled, problems = compile_config(config, "$.config")
    assert problems == []
    return compiled.render(data or {}, lookup)


# -- accepted, rendered --------------------------------------------------------------------------


def test_a_secret_in_a_config_is_rendered_from_the_lookup_as_a_value_or_inside_text() -> None:
    config = {
        "token": "{{ secrets.api_token }}",
        "headers": {"Authorization": "Bearer {{secrets.api_token}}"},
        "dsn": ["postgres://app:{{ secrets.db-password }}@db/{{ a.name }}"],
        "plain": 3,
    }

    assert rendered(config, {"a": {"name": "main"}}) == {
        "token": "t0ken",
        "headers": {"Authorization": "Bearer t0ken"},
        "dsn": ["postgres://app:pw@db/main"],
        "plain": 3,
    }


def test_secrets_are_not_run_data_a_node_reads() -> None:
    plan = plan_of(node("a", config={"token": "{{ secrets.api_token }}", "x": "{{ workflow.input.x }}"}))

    assert plan.node("a").config.roots == frozenset({"workflow"})
    assert plan.node("a").reads == frozenset({"workflow"})
    assert plan.source["dag"]["nodes"][0]["config"]["token"] == "{{ secrets.api_token }}"


def test_a_secret_the_lookup_lacks_names_the_secret_and_where_the_config_asked_for_it() -> None:
    with pytest.raises(SecretUnavailable) as raised:
        rendered({"headers": {"X-Key": "key={{ secrets.missing }}"}})

    assert (
        str(raised.value)
        == "config.headers.X-Key: secret 'missing' is not available: not in the test's secrets"
    )
    assert raised.value.name == "missing"
    assert not isinstance(raised.value, TemplateError), "a missing secret is not a template error"


def test_a_config_rendered_without_a_lookup_has_no_secrets() -> None:
    compiled, _ = compile_config({"token": "{{ secrets.api_token }}"}, "$.config")

    with pytest.raises(SecretUnavailable, match=r"config\.token: secret 'api_token' is not available"):
        compiled.render({})


def test_a_node_output_called_secrets_is_never_read_for_a_secret() -> None:
    assert rendered({"t": "{{ secrets.api_token }}"}, {"secrets": {"api_token": "from run data"}}) == {
        "t": "t0ken"
    }


# -- refused ----------------------------------------------------------------------------------------


def test_a_secret_in_when_is_refused_at_the_when() -> None:
    problems = problems_of(workflow(node("a", when="{{ secrets.api_token }} == 'x'")))

    assert problems == [
        Problem(
            "$.dag.nodes[0].when",
            "'{{ secrets.api_token }}': a condition cannot read a secret: the values it reads are "
            "shown in the node's skip reason and the run's history (node 'a')",
        )
    ]


def test_a_secret_in_the_workflow_output_is_refused_at_its_string() -> None:
    raw = workflow(node("a"))
    raw["output"] = {"result": "{{ a.x }}", "auth": {"header": "Bearer {{ secrets.api_token }}"}}

    assert problems_of(raw) == [
        Problem(
            "$.output.auth.header",
            "'{{ secrets.api_token }}': the workflow's output cannot read a secret: it is stored "
            "with the run",
        )
    ]


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("{{ secrets }}", "$.dag.nodes[0].config.k"),
        ("{{ secrets.a.b }}", "$.dag.nodes[0].config.k"),
        ("{{ secrets[0] }}", "$.dag.nodes[0].config.k"),
    ],
)
def test_a_secret_read_other_than_as_secrets_name_is_refused_at_its_string(template: str, path: str) -> None:
    problems = problems_of(workflow(node("a", config={"k": template})))

    assert problems == [
        Problem(
            path,
            f"'{template}': a secret is read as exactly '{{{{ secrets.NAME }}}}', one name and nothing "
            "after it (node 'a')",
        )
    ]


def test_secrets_is_a_reserved_node_id() -> None:
    problems = problems_of(workflow(node("secrets"), node("b", ["secrets"])))

    assert problems == [Problem("$.dag.nodes[0].id", "'secrets' is a reserved name")]


def test_every_secret_problem_is_reported_at_once_with_the_others() -> None:
    raw = workflow(
        node(
            "a",
            config={"k": "{{ secrets }}", "ok": "{{ secrets.x }}", "n": "{{ nope.x }}"},
            when="{{ secrets.y }}",
        )
    )
    raw["output"] = {"o": "{{ secrets.z }}"}

    assert [problem.path for problem in problems_of(raw)] == [
        "$.dag.nodes[0].config.k",
        "$.dag.nodes[0].when",
        "$.dag.nodes[0].config",
        "$.output.o",
    ]
