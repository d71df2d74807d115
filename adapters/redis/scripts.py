"""Lua scripts, loaded by SHA and reloaded when Redis has forgotten them (after a restart)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any

from redis.asyncio.client import Pipeline
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


async def run_scripts(
    client: Redis, script: Script, calls: Sequence[tuple[Sequence[str], Sequence[str]]]
) -> list[Any]:
    """Call ``script`` once per (keys, args) in one pipeline; replies in order, a call's error as its
    reply. Calls that met an empty script cache (a restarted Redis) ran nothing: they go again."""
    replies = await _pipelined(client, script.sha or await script.load(client), calls)
    again = [position for position, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if again:
        sha = await script.load(client)
        for position, reply in zip(
            again, await _pipelined(client, sha, [calls[p] for p in again]), strict=True
        ):
            replies[position] = reply
    return replies


def add_call(pipe: Pipeline, sha: str, keys: Sequence[str], args: Sequence[str]) -> None:
    """Queue one call of a loaded script. (As a plain command: a Redis Cluster pipeline refuses its
    ``evalsha`` method, but routes the command by its first key.)"""
    pipe.execute_command("EVALSHA", sha, len(keys), *keys, *args)


async def _pipelined(
    client: Redis, sha: str, calls: Sequence[tuple[Sequence[str], Sequence[str]]]
) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for keys, args in calls:
        add_call(pipe, sha, keys, args)
    return list(await pipe.execute(raise_on_error=False))
