"""Typed input through the API on both backends: the example ``typed_input`` runs with its defaults,
a bad input is a 400 listing every problem with its path, a bad ``input_schema`` is refused at
registration, and unknown keys are refused naming the nearest known one."""

from __future__ import annotations

import httpx
from api_support import assert_error, load_example, node, wait_final, workflow
from http_support import submit, trigger


async def test_the_typed_input_example_runs_with_the_schema_defaults(client: httpx.AsyncClient) -> None:
    execution_id = await submit(client, load_example("typed_input"))
    instance_id = await trigger(client, execution_id, {"user_id": "u-42"})
    status = await wait_final(client, instance_id)
    assert status["state"] == "COMPLETED", status
    results = (await client.get(f"/api/workflows/{instance_id}/results")).json()["results"]
    assert results["get_user"]["url"] == "https://jsonplaceholder.typicode.com/users/u-42"
    prompt = results["summarize_user"]["prompt"]
    assert prompt.startswith("In en, in at most 50 words, summarize: simulated content of"), prompt


async def test_a_bad_input_is_refused_with_every_problem_and_its_path(client: httpx.AsyncClient) -> None:
    execution_id = await submit(client, load_example("typed_input"))
    bad = {"language": "es", "max_words": 0, "surprise": True}
    response = await client.post(f"/api/workflow/trigger/{execution_id}", json={"input": bad})
    error = assert_error(response, 400, "invalid_input")
    assert error["details"] == [
        {"path": "$.input", "message": "Additional properties are not allowed ('surprise' was unexpected)"},
        {"path": "$.input.language", "message": "'es' is not one of ['en', 'fr', 'de']"},
        {"path": "$.input.max_words", "message": "0 is less than the minimum of 1"},
        {"path": "$.input.user_id", "message": "'user_id' is a required property"},
    ]
    assert "$.input.user_id: 'user_id' is a required property" in error["message"]

    # The resource route refuses it the same way.
    response = await client.post("/api/runs", json={"workflow": "typed_input", "input": {"user_id": "x"}})
    error = assert_error(response, 400, "invalid_input")
    assert [detail["path"] for detail in error["details"]] == ["$.input.user_id"]
    assert "does not match '^u-[0-9]+$'" in error["details"][0]["message"]


async def test_an_invalid_input_schema_is_refused_at_registration(client: httpx.AsyncClient) -> None:
    definition = workflow("typed_badly", node("a", "input"))
    definition["input_schema"] = {"type": "object", "properties": {"n": {"type": "integr"}}}
    error = assert_error(await client.post("/api/workflow", json=definition), 400, "invalid_definition")
    assert [detail["path"] for detail in error["details"]] == ["$.input_schema.properties.n.type"]
    assert "'integr' is not one of" in error["details"][0]["message"]


async def test_unknown_keys_are_refused_naming_the_nearest_known_one(client: httpx.AsyncClient) -> None:
    definition = workflow("misspelt", node("a", "input"))
    definition["dag"]["nodes"][0]["retry_policy"] = {"max_attemps": 3}
    definition["descripton"] = "typo"
    definition["x-owner"] = "team-a"
    error = assert_error(await client.post("/api/workflow", json=definition), 400, "invalid_definition")
    assert sorted((detail["path"], detail["message"]) for detail in error["details"]) == [
        (
            "$.dag.nodes[0].retry_policy.max_attemps",
            'unknown key "max_attemps"; did you mean "max_attempts"? (node \'a\')',
        ),
        ("$.descripton", 'unknown key "descripton"; did you mean "description"?'),
    ]
