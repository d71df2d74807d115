"""Definitions stored as their validated JSON source; compiled once per process."""

from __future__ import annotations

import json

from adapters.redis.connection import Redis, translated_errors
from adapters.redis.keys import KeySpace
from domain.errors import NotFound
from domain.limits import Limits
from domain.ports import StoredDefinition
from domain.validation import build_plan

# Stored definitions were validated against the limits in force when they were submitted.
_STORED_LIMITS = Limits(max_nodes=10**7, max_edges=10**8, max_config_bytes=10**9, max_nesting_depth=10**4)


class RedisDefinitionRepository:
    """``domain.ports.DefinitionRepository`` on Redis strings."""

    def __init__(self, client: Redis, keys: KeySpace, url: str) -> None:
        self._client = client
        self._keys = keys
        self._url = url
        self._cache: dict[str, StoredDefinition] = {}

    async def add(self, definition: StoredDefinition) -> None:
        document = {"source": dict(definition.plan.source), "created_at": definition.created_at}
        async with translated_errors(self._url):
            await self._client.set(self._keys.definition(definition.definition_id), json.dumps(document))
        self._cache[definition.definition_id] = definition

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
        stored = StoredDefinition(definition_id, plan, float(document["created_at"]))
        self._cache[definition_id] = stored
        return stored
