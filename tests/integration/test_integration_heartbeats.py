"""Heartbeats on the embedded engine (memory backend): details refused at the call, the default
attempt deadline from settings (a sync hung handler timed out while its worker runs the retry), a
secret in the details redacted."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from dependency_injector import providers
from engine_support import fresh_registry, make_container, node, run_workflow, workflow

from domain.statuses import NodeStatus, RunStatus
from services.worker.redaction import Redactor
from services.worker.registry import HandlerContext
from services.worker.secrets import SecretSource


async def test_details_over_the_limit_or_not_json_are_refused_at_the_call() -> None:
    registry = fresh_registry()

    @registry.register("beats")
    async def beats(ctx: HandlerContext) -> dict[str, Any]:
        await ctx.heartbeat({"fits": "x" * 10})
        refusals = []
        for details in ({"big": "x" * 200}, {"a set": {1, 2}}):
            try:
                await ctx.heartbeat(details)
            except ValueError as error:
                refusals.append(f"{type(error).__name__}: {error}")
        return {"refusals": refusals}

    container = make_container(registry, max_heartbeat_details_bytes=100)
    run = await run_workflow(container, workflow(node("b", "beats")))

    assert run.status is RunStatus.COMPLETED
    big, not_json = run.outputs["b"]["refusals"]
    assert big == (
        "HeartbeatDetailsRefused: heartbeat details are 210 bytes, over the limit of 100 "
        "(MAX_HEARTBEAT_DETAILS_BYTES)"
    )
    assert not_json.startswith("HeartbeatDetailsRefused: heartbeat details must be JSON: ")
    assert run.node("b").progress == {"fits": "x" * 10}


async def test_a_node_without_a_timeout_times_out_at_the_default_deadline() -> None:
    """A sync handler that hangs (it ignores ``ctx.cancelled``): the default deadline times it out,
    the worker abandons it after the grace period, and the retry runs on the other slot."""
    registry = fresh_registry()
    release = threading.Event()

    @registry.register("hangs_once")
    def hangs_once(ctx: HandlerContext) -> dict[str, int]:
        if ctx.attempt == 1:
            release.wait(30)
        return {"attempt": ctx.attempt}

    container = make_container(
        registry, default_attempt_timeout_seconds=0.5, cancel_grace_seconds=0.2, worker_concurrency=2
    )
    retry = {"max_attempts": 2, "initial_backoff_seconds": 0}
    try:
        run = await run_workflow(container, workflow(node("h", "hangs_once", retry_policy=retry)))
    finally:
        release.set()
        await asyncio.sleep(0)

    assert run.status is RunStatus.COMPLETED
    state = run.node("h")
    assert (state.status, state.attempt) == (NodeStatus.COMPLETED, 2)
    assert state.failed_attempts is not None
    [failed] = state.failed_attempts
    assert failed.error.message == (
        "attempt 1 exceeded the default attempt timeout of 0.5s (its node sets no timeout)"
    )


async def test_a_secret_in_heartbeat_details_is_redacted() -> None:
    registry = fresh_registry()

    @registry.register("beats_secret")
    async def beats_secret(ctx: HandlerContext) -> dict[str, str]:
        await ctx.heartbeat({"using": ctx.config["token"], "note": f"auth {ctx.config['token']}"})
        return {}

    container = make_container(registry)
    source = SecretSource({"HB_SECRET_TOKEN": "s3cr3t-value"}, "HB_SECRET_", None, Redactor())
    container.secret_source.override(providers.Object(source))
    run = await run_workflow(
        container, workflow(node("b", "beats_secret", config={"token": "{{ secrets.token }}"}))
    )

    assert run.status is RunStatus.COMPLETED
    assert run.node("b").progress == {"using": "***", "note": "auth ***"}
    history = await container.workflows().history(run.run_id, 0, 100)
    assert "s3cr3t" not in repr(history)
