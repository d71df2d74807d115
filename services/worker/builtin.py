"""Built-in handlers: the seed's (so its scenario files run unchanged) and ``http``, ``sleep`` and
``transform`` (each in its module of ``services.worker.handlers``)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from services.worker.handlers.prompt import format_prompt
from services.worker.handlers.sleep import sleep_handler
from services.worker.handlers.transform import transform_handler
from services.worker.registry import HandlerContext, HandlerRegistry, NonRetryableError

if TYPE_CHECKING:
    from services.worker.handlers.http import HttpHandler

EXTERNAL_SERVICE_DELAY_SECONDS = 2.0
LLM_SERVICE_DELAY_SECONDS = 0.1


class SimulatedServiceError(RuntimeError):
    """Raised by the simulated services when ``config.fail_attempts`` asks them to fail."""


class SimulatedPermanentError(NonRetryableError):
    """Raised instead when ``config.non_retryable`` is true too: the node fails without a retry."""


async def _simulate(ctx: HandlerContext, default_delay: float, service: str) -> None:
    """Waits ``config.delay_seconds``, beating its progress every ``config.progress_every_seconds``
    when given; hangs (without a beat) on the attempts up to ``config.hang_attempts``; fails the
    attempts up to ``config.fail_attempts``."""
    if ctx.attempt <= int(ctx.config.get("hang_attempts", 0)):
        await asyncio.Event().wait()  # until the attempt is cancelled (it times out)
    delay = float(ctx.config.get("delay_seconds", default_delay))
    every = ctx.config.get("progress_every_seconds")
    if every is None:
        await asyncio.sleep(delay)
    else:
        await _wait_beating(ctx, delay, float(every))
    fail_attempts = int(ctx.config.get("fail_attempts", 0))
    if ctx.attempt <= fail_attempts:
        error = SimulatedPermanentError if ctx.config.get("non_retryable") else SimulatedServiceError
        raise error(f"{service} failed on attempt {ctx.attempt} (configured to fail {fail_attempts} time(s))")


async def _wait_beating(ctx: HandlerContext, delay: float, every: float) -> None:
    waited = 0.0
    while waited < delay:
        await ctx.heartbeat({"waited_seconds": round(waited, 3), "of_seconds": delay})
        step = min(every, delay - waited)
        await asyncio.sleep(step)
        waited += step


def input_handler(ctx: HandlerContext) -> dict[str, Any]:
    return {"input_payload": ctx.run_input}


def output_handler(ctx: HandlerContext) -> dict[str, Any]:
    return dict(ctx.inputs)


async def call_external_service(ctx: HandlerContext) -> dict[str, Any]:
    url = str(ctx.config.get("url", ""))
    await _simulate(ctx, EXTERNAL_SERVICE_DELAY_SECONDS, "external service")
    return {
        "url": url,
        "status_code": 200,
        "fetched_content": f"simulated content of {url}",
        "config": ctx.config,
    }


async def call_llm_service(ctx: HandlerContext) -> dict[str, Any]:
    """As the seed's: the prompt is ``prompt.format(**config)``, so ``{content}`` in it reads the
    config's ``content`` (plain names only: ``services.worker.handlers.prompt``)."""
    prompt = format_prompt(str(ctx.config.get("prompt", "")), ctx.config)
    await _simulate(ctx, LLM_SERVICE_DELAY_SECONDS, "LLM service")
    model = str(ctx.config.get("model", "simulated-llm"))
    return {"prompt": prompt, "model": model, "response": f"[{model}] answer to: {prompt}"}


class _HttpAtFirstRequest:
    """The built-in ``http`` handler, made at its first request: httpx takes about 0.2 s to import,
    which every process (``validate``, ``run``, the API, a worker) would otherwise pay at start-up
    whether or not it ever runs an ``http`` node."""

    def __init__(self) -> None:
        self._handler: HttpHandler | None = None

    async def call(self, ctx: HandlerContext) -> dict[str, Any]:
        if self._handler is None:
            from services.worker.handlers.http import HttpHandler  # noqa: PLC0415 - see the class

            self._handler = HttpHandler()
        return await self._handler.call(ctx)


def register_builtins(registry: HandlerRegistry, http: HttpHandler | None = None) -> HandlerRegistry:
    """The built-ins into ``registry``; ``http``: the ``http`` handler to use (default: one whose
    options come from the environment's settings)."""
    registry.register("input")(input_handler)
    registry.register("output")(output_handler)
    registry.register("call_external_service")(call_external_service)
    registry.register("call_llm_service")(call_llm_service)
    registry.register("http")((http or _HttpAtFirstRequest()).call)
    registry.register("sleep")(sleep_handler)
    registry.register("transform")(transform_handler)
    return registry


def builtin_names() -> frozenset[str]:
    """The handlers every worker has, whatever modules it imports."""
    return register_builtins(HandlerRegistry()).names()


default_registry = register_builtins(HandlerRegistry())
handler = default_registry.register
"""Decorator for user modules: ``@handler("name")``."""
