"""Lua scripts, loaded by SHA and reloaded when Redis has forgotten them (after a restart)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError

from adapters.redis.connection import Redis


class Script:
    def __init__(self, name: str) -> None:
        self.source = resources.files("adapters.redis.lua").joinpath(f"{name}.lua").read_text()
        self.sha: str | None = None

    async def load(self, client: Redis) -> str:
        self.sha = str(await client.script_load(self.source))
        return self.sha


async def with_script[T](client: Redis, script: Script, call: Callable[[str], Awaitable[T]]) -> T:
    """Run ``call(sha)``; on NOSCRIPT load the script and run it once more.

    Safe because every script of this engine ignores a repeated application.
    """
    sha = script.sha or await script.load(client)
    try:
        return await call(sha)
    except NoScriptError:
        return await call(await script.load(client))


def first_noscript(results: list[Any]) -> bool:
    return any(isinstance(result, NoScriptError) for result in results)
