"""Contract of ``DefinitionRepository``: what is added comes back equal; unknown ids raise NotFound."""

from __future__ import annotations

import pytest
from contract_support import T0, Backend, new_id, node, plan_shape, retry, workflow

from domain.errors import NotFound
from domain.ports import StoredDefinition
from domain.validation import build_plan

RICH = workflow(
    node("extract", config={"url": "https://example.org/data", "limit": 10, "tags": ["a", "b"]}),
    node(
        "transform",
        ["extract"],
        handler="custom.transform",
        config={"rows": "{{ extract.rows }}", "label": "user {{ workflow.input.user }}"},
        retry_policy=retry(3, 0.5),
        timeout_seconds=12.5,
    ),
    node("audit", ["extract"], config={"nested": {"deep": [1, {"x": None}]}}, heartbeat_timeout_seconds=4),
    node("load", ["transform", "audit"], config={}),
    name="etl",
)


@pytest.mark.parametrize("default_timeout", [None, 90.0], ids=["no-default", "default"])
async def test_add_then_get_returns_an_equal_plan(backend: Backend, default_timeout: float | None) -> None:
    """The default attempt deadline the plan was compiled with is kept with it (every process then
    decides deadlines alike, whatever its own settings)."""
    plan = build_plan(RICH, default_attempt_timeout_seconds=default_timeout)
    stored = StoredDefinition(new_id("def"), plan, T0)
    await backend.definitions.add(stored)

    # Another process (no cache) reads what this one stored; in memory it is the same repository.
    reader = await backend.connect()
    for repository in (backend.definitions, reader.definitions):
        fetched = await repository.get(stored.definition_id)
        assert fetched.definition_id == stored.definition_id
        assert fetched.created_at == stored.created_at
        assert fetched.name == "etl"
        assert plan_shape(fetched.plan) == plan_shape(stored.plan)
        assert [spec.id for spec in fetched.plan.nodes] == ["extract", "transform", "audit", "load"]
        assert fetched.plan.node("transform").handler == "custom.transform"
        assert fetched.plan.node("load").parent_ids == ("transform", "audit")
        assert fetched.plan.node("extract").config.source == RICH["dag"]["nodes"][0]["config"]
        assert fetched.plan.node("audit").heartbeat_timeout_seconds == 4
        assert fetched.plan.default_attempt_timeout_seconds == default_timeout


async def test_definitions_are_kept_apart(backend: Backend) -> None:
    first = StoredDefinition(new_id("def"), build_plan(workflow(node("one"), name="first")), T0)
    second = StoredDefinition(new_id("def"), build_plan(workflow(node("two"), name="second")), T0 + 1)
    await backend.definitions.add(first)
    await backend.definitions.add(second)

    reader = await backend.connect()
    assert (await reader.definitions.get(first.definition_id)).name == "first"
    assert (await reader.definitions.get(second.definition_id)).name == "second"
    assert (await reader.definitions.get(second.definition_id)).created_at == T0 + 1


async def test_unknown_definition_raises_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound):
        await backend.definitions.get("no-such-definition")
    reader = await backend.connect()
    with pytest.raises(NotFound):
        await reader.definitions.get("no-such-definition")
