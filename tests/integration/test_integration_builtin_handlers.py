"""The built-in ``sleep`` and ``transform`` handlers, and ``call_llm_service``'s prompt formatted with
its config as the seed's is, in real runs on the memory backend."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from engine_support import fresh_registry, make_container, node, run_workflow, view, workflow

from domain.statuses import RunStatus
from services.engine import EmbeddedEngine
from services.worker.handlers.prompt import PromptFormatError, PromptKeyMissing, format_prompt

RETRIES = {"max_attempts": 3, "initial_backoff_seconds": 0.01}


async def run_builtin(*nodes: dict[str, Any], run_input: dict[str, Any] | None = None) -> dict[str, Any]:
    container = make_container(fresh_registry(builtins=True))
    return view(await run_workflow(container, workflow(*nodes), run_input))


# --- sleep ----------------------------------------------------------------------------------------


async def test_sleep_waits_its_seconds() -> None:
    started = time.monotonic()
    run = await run_builtin(node("nap", "sleep", config={"seconds": 0.2}))

    assert run["nodes"]["nap"]["output"] == {"slept_seconds": 0.2}
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize("seconds", [-1, "soon", None, True, float("inf")])
async def test_sleep_refuses_what_is_not_a_number_of_seconds(seconds: Any) -> None:
    config = {} if seconds is None else {"seconds": seconds}
    run = await run_builtin(node("nap", "sleep", config=config, retry_policy=RETRIES))

    nap = run["nodes"]["nap"]
    assert (nap["status"], nap["attempts"], nap["error"]["type"]) == ("FAILED", 1, "SleepConfigError")
    assert "config.seconds must be a number" in nap["error"]["message"]


async def test_a_cancelled_sleep_ends_at_once_and_frees_its_slot() -> None:
    # One slot, a grace of 20 s: the next run can only complete quickly if the sleep itself ended.
    container = make_container(
        fresh_registry(builtins=True),
        worker_concurrency=1,
        cancel_poll_seconds=0.05,
        cancel_grace_seconds=20,
    )
    workflows = container.workflows()
    long_nap = await workflows.register(workflow(node("nap", "sleep", config={"seconds": 60})))
    short_nap = await workflows.register(workflow(node("nap", "sleep", config={"seconds": 0})))
    async with EmbeddedEngine(container, workers=1) as engine:
        run = await workflows.start(long_nap.definition_id, {})
        async with asyncio.timeout(10):
            while (await workflows.get_run(run.run_id)).node("nap").status.value != "RUNNING":  # noqa: ASYNC110 - polled state
                await asyncio.sleep(0.01)
        cancelled_at = time.monotonic()
        await workflows.cancel(run.run_id)
        assert await engine.wait_for(run.run_id) is RunStatus.CANCELLED
        after = await workflows.start(short_nap.definition_id, {})
        async with asyncio.timeout(15):
            assert await engine.wait_for(after.run_id) is RunStatus.COMPLETED
        took = time.monotonic() - cancelled_at
    assert took < 10, took  # well under the grace: the sleep stopped when told


async def test_a_sleep_past_the_node_timeout_fails_the_attempt() -> None:
    started = time.monotonic()
    run = await run_builtin(node("nap", "sleep", config={"seconds": 60}, timeout_seconds=0.2))

    assert run["nodes"]["nap"]["error"]["type"] == "TimeoutError"
    assert time.monotonic() - started < 10


# --- transform ------------------------------------------------------------------------------------


async def test_transform_shapes_its_inputs_by_default_and_its_data_when_given() -> None:
    users = [{"name": "ada", "age": 36}, {"name": "alan", "age": 41}, {"name": "grace", "age": 85}]
    run = await run_builtin(
        node("input", "input"),
        node(
            "older",
            "transform",
            ["input"],
            config={"expression": "input.input_payload.users[?age > `40`].name"},
        ),
        node(
            "summary",
            "transform",
            ["older"],
            config={
                "expression": "{count: length(names), first: names[0], tenant: tenant}",
                "data": {"names": "{{ older }}", "tenant": "{{ workflow.input.tenant }}"},
            },
        ),
        run_input={"users": users, "tenant": "t-1"},
    )

    assert run["status"] == "COMPLETED"
    assert run["nodes"]["older"]["output"] == ["alan", "grace"]
    assert run["nodes"]["summary"]["output"] == {"count": 2, "first": "alan", "tenant": "t-1"}


@pytest.mark.parametrize(
    ("expression", "complaint"),
    [
        ("users[?age >", "transform expression 'users[?age >' failed"),
        ("no_such_function(@)", "transform expression 'no_such_function(@)' failed: Unknown function"),
        ("length(`1`)", "transform expression 'length(`1`)' failed: In function length()"),
    ],
)
async def test_a_bad_expression_fails_the_node_for_good_naming_it(expression: str, complaint: str) -> None:
    run = await run_builtin(
        node("shape", "transform", config={"expression": expression, "data": {}}, retry_policy=RETRIES)
    )

    shape = run["nodes"]["shape"]
    assert (shape["status"], shape["attempts"], shape["error"]["type"]) == ("FAILED", 1, "TransformError")
    assert complaint in shape["error"]["message"]


async def test_transform_runs_no_code() -> None:
    run = await run_builtin(
        node("shape", "transform", config={"expression": "__import__('os')", "data": {"x": 1}})
    )

    assert run["nodes"]["shape"]["error"]["type"] == "TransformError"


# --- call_llm_service's prompt --------------------------------------------------------------------


async def test_the_prompt_reads_config_keys_as_the_seed_does() -> None:
    run = await run_builtin(
        node("fetch", "call_external_service", config={"url": "https://x.test/a", "delay_seconds": 0}),
        node(
            "ask",
            "call_llm_service",
            ["fetch"],
            config={
                "prompt": "Summarize {content} for {who} as {shape}",
                "content": "{{ fetch.fetched_content }}",
                "who": "{{ workflow.input.user }}",
                "shape": '{"summary": "..."}',  # braces in a value are not formatted again
                "delay_seconds": 0,
            },
        ),
        run_input={"user": "u-7"},
    )

    ask = run["nodes"]["ask"]["output"]
    assert ask["prompt"] == 'Summarize simulated content of https://x.test/a for u-7 as {"summary": "..."}'
    assert ask["response"] == f"[simulated-llm] answer to: {ask['prompt']}"


async def test_a_prompt_naming_a_missing_key_fails_the_node_for_good() -> None:
    run = await run_builtin(
        node(
            "ask",
            "call_llm_service",
            config={"prompt": "About {content}", "delay_seconds": 0},
            retry_policy=RETRIES,
        )
    )

    ask = run["nodes"]["ask"]
    assert (ask["status"], ask["attempts"], ask["error"]["type"]) == ("FAILED", 1, "PromptKeyMissing")
    assert "no key 'content'" in ask["error"]["message"]
    assert "its keys: delay_seconds, prompt" in ask["error"]["message"]


@pytest.mark.parametrize(
    "prompt", ["{content.__class__}", "{content[0]}", "{0}", "{}", "{content.__init__.__globals__}"]
)
def test_the_prompt_reads_plain_names_only(prompt: str) -> None:
    with pytest.raises(PromptFormatError, match="is not a plain name"):
        format_prompt(prompt, {"content": "text"})


@pytest.mark.parametrize(
    ("prompt", "complaint"),
    [("{content:99999999}", "asks for over 9999"), ("open {", "not a valid format string"), ("}", "Single")],
)
def test_a_malformed_prompt_is_a_clear_error(prompt: str, complaint: str) -> None:
    with pytest.raises(PromptFormatError, match=complaint):
        format_prompt(prompt, {"content": "text"})


def test_formatting_keeps_specs_conversions_and_literal_braces() -> None:
    assert format_prompt("{n:>4}|{s!r}|{{x}}", {"n": 7, "s": "a"}) == "   7|'a'|{x}"
    with pytest.raises(PromptKeyMissing, match=r"refers to \{gone\}"):
        format_prompt("{gone}", {})
