"""How handler failures, bad outputs, template errors and timeouts end a node, in process."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from engine_support import fresh_registry, make_container, node, run_workflow, view, workflow

from services.worker.registry import HandlerContext, HandlerRegistry

NO_WAIT_RETRIES = {"max_attempts": 3, "initial_backoff_seconds": 0, "backoff_multiplier": 1}


def registry_with(**handlers: Any) -> HandlerRegistry:
    registry = fresh_registry()
    for name, function in handlers.items():
        registry.register(name)(function)
    return registry


async def echo(ctx: HandlerContext) -> dict[str, Any]:
    return {"node": ctx.node_id, "inputs": sorted(ctx.inputs)}


def boom(ctx: HandlerContext) -> dict[str, Any]:
    raise ValueError("boom")


async def test_handler_error_fails_the_node_skips_dependents_and_fails_the_run() -> None:
    container = make_container(registry_with(echo=echo, boom=boom))
    definition = workflow(
        node("start", "echo"),
        node("bad", "boom", ["start"]),
        node("child", "echo", ["bad"]),
        node("grandchild", "echo", ["child", "start"]),
        node("other", "echo", ["start"]),
        node("after_other", "echo", ["other"]),
    )

    run = view(await run_workflow(container, definition))
    nodes = run["nodes"]

    assert run["status"] == "FAILED"
    assert nodes["bad"]["status"] == "FAILED"
    error = nodes["bad"]["error"]
    assert error["type"] == "ValueError"
    assert error["message"].startswith("boom\nTraceback (most recent call last):\n"), error
    assert error["message"].endswith('raise ValueError("boom")\nValueError: boom'), "the handler's frames"
    assert nodes["bad"]["attempts"] == 1
    assert "output" not in nodes["bad"]
    for skipped in ("child", "grandchild"):
        assert nodes[skipped]["status"] == "SKIPPED"
        assert nodes[skipped]["attempts"] == 0
        assert nodes[skipped]["error"]["type"] == "UpstreamFailed"
        assert "'bad'" in nodes[skipped]["error"]["message"]
    for completed in ("start", "other", "after_other"):
        assert nodes[completed]["status"] == "COMPLETED"
        assert nodes[completed]["error"] is None
    assert nodes["after_other"]["output"] == {"node": "after_other", "inputs": ["other"]}


async def test_handler_error_is_retried_up_to_max_attempts() -> None:
    container = make_container(registry_with(boom=boom))
    definition = workflow(node("bad", "boom", retry_policy=NO_WAIT_RETRIES))

    run = view(await run_workflow(container, definition))
    bad = run["nodes"]["bad"]

    assert run["status"] == "FAILED"
    assert bad["status"] == "FAILED"
    assert bad["attempts"] == 3
    assert [failed["attempt"] for failed in bad["failed_attempts"]] == [1, 2]
    assert all(failed["error"]["type"] == "ValueError" for failed in bad["failed_attempts"])


async def test_output_that_is_not_json_fails_with_invalid_output_and_is_not_retried() -> None:
    def not_json(ctx: HandlerContext) -> dict[str, Any]:
        return {"when": object()}

    container = make_container(registry_with(not_json=not_json, echo=echo))
    definition = workflow(
        node("odd", "not_json", retry_policy=NO_WAIT_RETRIES), node("after", "echo", ["odd"])
    )

    run = view(await run_workflow(container, definition))
    odd = run["nodes"]["odd"]

    assert run["status"] == "FAILED"
    assert odd["status"] == "FAILED"
    assert odd["error"]["type"] == "InvalidOutput"
    assert "not JSON" in odd["error"]["message"]
    assert odd["attempts"] == 1
    assert "failed_attempts" not in odd
    assert run["nodes"]["after"]["status"] == "SKIPPED"


async def test_output_over_max_output_bytes_fails_with_output_too_large() -> None:
    async def big(ctx: HandlerContext) -> dict[str, Any]:
        return {"data": "x" * 200}

    async def small(ctx: HandlerContext) -> dict[str, Any]:
        return {"data": "x" * 10}

    container = make_container(registry_with(big=big, small=small), max_output_bytes=100)
    definition = workflow(node("big", "big", retry_policy=NO_WAIT_RETRIES), node("small", "small"))

    run = view(await run_workflow(container, definition))
    big_node = run["nodes"]["big"]

    assert run["status"] == "FAILED"
    assert big_node["status"] == "FAILED"
    assert big_node["error"]["type"] == "OutputTooLarge"
    assert "limit of 100" in big_node["error"]["message"]
    assert big_node["attempts"] == 1
    assert run["nodes"]["small"]["status"] == "COMPLETED"
    assert run["nodes"]["small"]["output"] == {"data": "x" * 10}


async def test_template_reading_a_missing_key_fails_with_template_error_and_is_not_retried() -> None:
    calls: list[str] = []

    async def source(ctx: HandlerContext) -> dict[str, Any]:
        return {"present": 1}

    async def reader(ctx: HandlerContext) -> dict[str, Any]:
        calls.append(ctx.node_id)
        return {}

    container = make_container(registry_with(source=source, reader=reader))
    definition = workflow(
        node("src", "source"),
        node(
            "use",
            "reader",
            ["src"],
            config={"value": "{{ src.absent_key }}"},
            retry_policy={"max_attempts": 5, "initial_backoff_seconds": 0},
        ),
    )

    run = view(await run_workflow(container, definition))
    use = run["nodes"]["use"]

    assert run["status"] == "FAILED"
    assert use["status"] == "FAILED"
    assert use["error"]["type"] == "TemplateError"
    assert "absent_key" in use["error"]["message"]
    assert use["attempts"] == 1
    assert "failed_attempts" not in use
    assert calls == []  # the handler never ran


async def test_node_timeout_fails_the_attempt_within_bounded_time() -> None:
    async def slow(ctx: HandlerContext) -> dict[str, Any]:
        await asyncio.sleep(5)
        return {}

    container = make_container(registry_with(slow=slow, echo=echo))
    definition = workflow(node("slow", "slow", timeout_seconds=0.2), node("after", "echo", ["slow"]))

    began = time.monotonic()
    run = view(await run_workflow(container, definition, deadline=4))
    elapsed = time.monotonic() - began
    slow_node = run["nodes"]["slow"]

    assert run["status"] == "FAILED"
    assert slow_node["status"] == "FAILED"
    assert slow_node["error"]["type"] == "TimeoutError"
    assert slow_node["attempts"] == 1
    took = datetime.fromisoformat(slow_node["finished_at"]) - datetime.fromisoformat(slow_node["started_at"])
    assert took.total_seconds() >= 0.2 - 0.01
    assert elapsed < 4  # the handler would have slept 5 s
    assert run["nodes"]["after"]["status"] == "SKIPPED"


async def test_timed_out_attempt_is_retried() -> None:
    async def slow_first(ctx: HandlerContext) -> dict[str, Any]:
        if ctx.attempt == 1:
            await asyncio.sleep(5)
        return {"attempt": ctx.attempt}

    container = make_container(registry_with(slow_first=slow_first))
    definition = workflow(
        node("n", "slow_first", timeout_seconds=0.2, retry_policy=NO_WAIT_RETRIES),
    )

    run = view(await run_workflow(container, definition, deadline=3))
    n = run["nodes"]["n"]

    assert run["status"] == "COMPLETED"
    assert n["attempts"] == 2
    assert n["output"] == {"attempt": 2}
    assert [failed["error"]["type"] for failed in n["failed_attempts"]] == ["TimeoutError"]


async def test_timeout_error_raised_by_a_handler_keeps_its_message() -> None:
    def connect(ctx: HandlerContext) -> dict[str, Any]:
        raise TimeoutError("connection to db.internal:5432 timed out")

    container = make_container(registry_with(connect=connect))
    run = view(await run_workflow(container, workflow(node("connect", "connect"))))
    connect_node = run["nodes"]["connect"]

    assert connect_node["status"] == "FAILED"
    assert connect_node["error"]["type"] == "TimeoutError"
    message = connect_node["error"]["message"]
    assert message.partition("\n")[0] == "connection to db.internal:5432 timed out", message
    assert "Traceback (most recent call last):" in message
