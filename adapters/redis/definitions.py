"""Definitions stored as their validated JSON source; compiled once per process.

Each registration takes the next version of its name (an atomic counter per name) and is indexed
by creation time, overall and per name, for listing.
"""

from __future__ import annotations

import dataclasses
import json

from adapters.redis.connection import Redis, translated_errors
from adapters.redis.keys import KeySpace
from adapters.redis.pages import members_after
from domain.errors import NotFound
from domain.limits import Limits
from domain.paging import Page, Position, decode_cursor, encode_cursor
from domain.ports import DefinitionSummary, StoredDefinition
from domain.validation import build_plan

# Stored definitions were validated against the limits in force when they were submitted.
_STORED_LIMITS = Limits(max_nodes=10**7, max_edges=10**8, max_config_bytes=10**9, max_nesting_depth=10**4)


class RedisDefinitionRepository:
    """``domain.ports.DefinitionRepository`` on Redis strings, with a version counter per name."""

    def __init__(self, client: Redis, keys: KeySpace, url: str) -> None:
        self._client = client
        self._keys = keys
        self._url = url
        self._cache: dict[str, StoredDefinition] = {}

    async def add(self, definition: StoredDefinition) -> StoredDefinition:
        keys, name = self._keys, definition.name
        async with translated_errors(self._url):
            version = int(await self._client.hincrby(keys.definition_versions, name, 1))
            stored = dataclasses.replace(definition, version=version)
            document = {
                "source": dict(definition.plan.source),
                "created_at": definition.created_at,
                "version": version,
            }
            summary = {
                "name": name,
                "version": version,
                "created_at": definition.created_at,
                "nodes": len(definition.plan.nodes),
            }
            pipe = self._client.pipeline(transaction=True)
            pipe.set(keys.definition(definition.definition_id), json.dumps(document))
            pipe.hset(keys.definition_summaries, definition.definition_id, json.dumps(summary))
            for index in (keys.definition_index(None), keys.definition_index(name)):
                pipe.zadd(index, {definition.definition_id: definition.created_at})
            await pipe.execute()
        self._cache[definition.definition_id] = stored
        return stored

    async def get(self, definition_id: str) -> StoredDefinition:
        cached = self._cache.get(definition_id)
        if cached is not None:
            return cached
        async with translated_errors(self._url):
            raw = await self._client.get(self._keys.definition(definition_id))
        if raw is None:
            raise NotFound("workflow definition", definition_id)
        document = json.loads(raw)
        plan = build_plan(document["source"], _STORED_LIMITS)
        stored = StoredDefinition(
            definition_id, plan, float(document["created_at"]), int(document.get("version", 0))
        )
        self._cache[definition_id] = stored
        return stored

    async def page(self, name: str | None, cursor: str | None, limit: int) -> Page[DefinitionSummary]:
        after = decode_cursor(cursor)
        async with translated_errors(self._url):
            members = await members_after(self._client, self._keys.definition_index(name), after, limit + 1)
            ids = [member for member, _ in members[:limit]]
            raw = await self._client.hmget(self._keys.definition_summaries, ids) if ids else []
        items = []
        for definition_id, text in zip(ids, raw, strict=True):
            if text is None:
                continue
            summary = json.loads(text)
            items.append(
                DefinitionSummary(
                    definition_id,
                    summary["name"],
                    int(summary["version"]),
                    float(summary["created_at"]),
                    int(summary["nodes"]),
                )
            )
        more = len(members) > limit
        last = members[limit - 1] if more else None
        return Page(items, encode_cursor(Position(last[1], last[0])) if last else None)
