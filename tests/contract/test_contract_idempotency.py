"""Adding a run under an id that is taken is refused atomically by every backend: what makes an
idempotent start (whose run id is derived from its key) happen once, across API replicas."""

from __future__ import annotations

import pytest
from contract_support import T0, Backend, drain, node, nothing_waiting, store_definition, workflow

from domain.errors import DefinitionAlreadyExists, RunAlreadyExists
from domain.events import RunStarted
from domain.idempotency import idempotent_start
from domain.ports import StoredDefinition
from domain.run import Run
from domain.validation import build_plan


async def test_a_second_run_under_the_same_id_is_refused_and_changes_nothing(backend: Backend) -> None:
    stored = await store_definition(backend, workflow(node("a")))
    start = idempotent_start("order-17", "$", "runs", {"n": 1})
    first = Run.create(start.run_id, stored.definition_id, stored.plan, {"n": 1}, T0, start)
    await backend.runs.add(first)
    other = idempotent_start("order-17", "$", "runs", {"n": 2})
    second = Run.create(other.run_id, stored.definition_id, stored.plan, {"n": 2}, T0 + 1, other)

    with pytest.raises(RunAlreadyExists):
        await backend.runs.add(second)

    kept = await backend.runs.get(start.run_id)
    assert (kept.input, kept.created_at, kept.start_request) == ({"n": 1}, T0, start)
    received = await drain(backend.events, 1)
    assert [d.message for d in received] == [RunStarted(start.run_id, T0, stored.definition_id)]
    assert await nothing_waiting(backend.events)  # the refused add announced nothing


async def test_a_second_definition_under_the_same_id_is_refused_and_takes_no_version(
    backend: Backend,
) -> None:
    request = idempotent_start("deploy-3", "$", "definitions", workflow(node("a")))
    first = StoredDefinition(request.definition_id, build_plan(workflow(node("a"))), T0, request=request)
    stored = await backend.definitions.add(first)
    other = idempotent_start("deploy-3", "$", "definitions", workflow(node("b")))
    second = StoredDefinition(other.definition_id, build_plan(workflow(node("b"))), T0 + 1, request=other)

    with pytest.raises(DefinitionAlreadyExists):
        await backend.definitions.add(second)

    kept = await backend.definitions.get(request.definition_id)
    assert (kept.version, kept.request, [n.id for n in kept.plan.nodes]) == (1, request, ["a"])
    page = await backend.definitions.page(stored.name, None, 10)
    assert [item.version for item in page.items] == [1]
    again = await backend.definitions.add(StoredDefinition("plain", build_plan(workflow(node("a"))), T0 + 2))
    assert again.version == 2  # the refused add took no version
