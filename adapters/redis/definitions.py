"""Definitions stored as their validated JSON source; compiled once per process.

Each registration takes the next version of its name (an atomic counter per name) and is indexed
by creation time, overall and per name, for listing.
"""

from __future__ import annotations

import dataclasses

from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from adapters.redis.codec.definitions import decode_document, decode_summary, encode_document, encode_summary
from adapters.redis.connection import Redis, translated_errors
from adapters.redis.keys import KeySpace
from adapters.redis.pages import members_after
from domain.errors import DefinitionAlreadyExists, NotFound
from domain.paging import Page, Position, decode_cursor, encode_cursor
from domain.ports import DefinitionSummary, StoredDefinition


class RedisDefinitionRepository:
    """``domain.ports.DefinitionRepository`` on Redis strings, with a version counter per name."""

    def __init__(self, client: Redis, keys: KeySpace, url: str) -> None:
        self._client = client
        self._keys = keys
        self._url = url
        self._cache: dict[str, StoredDefinition] = {}

    async def add(self, definition: StoredDefinition) -> StoredDefinition:
        async with translated_errors(self._url):
            if definition.request is None:
                version = int(await self._client.hincrby(self._keys.definition_versions, definition.name, 1))
                stored = dataclasses.replace(definition, version=version)
                await self._store(stored)
            else:
                stored = await self._add_once(definition)
        self._cache[definition.definition_id] = stored
        return stored

    async def _add_once(self, definition: StoredDefinition) -> StoredDefinition:
        """An idempotent registration (its id derived from its key): the check that the id is new,
        the next version and the writes in one optimistic transaction (WATCH on the definition's key
        and the version counters; a concurrent change retries), so racing replicas store it once and
        take one version."""
        document_key, versions = (
            self._keys.definition(definition.definition_id),
            self._keys.definition_versions,
        )
        async with self._client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(document_key, versions)
                    if await pipe.exists(document_key):
                        raise DefinitionAlreadyExists(definition.definition_id)
                    version = int(await pipe.hget(versions, definition.name) or 0) + 1
                    stored = dataclasses.replace(definition, version=version)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(versions, definition.name, str(version))
                    self._write(pipe, stored)
                    await pipe.execute()
                    return stored
                except WatchError:
                    continue

    async def _store(self, stored: StoredDefinition) -> None:
        pipe = self._client.pipeline(transaction=True)
        self._write(pipe, stored)
        await pipe.execute()

    def _write(self, pipe: Pipeline, stored: StoredDefinition) -> None:
        keys, definition_id = self._keys, stored.definition_id
        pipe.set(keys.definition(definition_id), encode_document(stored))
        pipe.hset(keys.definition_summaries, definition_id, encode_summary(stored))
        for index in (keys.definition_index(None), keys.definition_index(stored.name)):
            pipe.zadd(index, {definition_id: stored.created_at})

    async def restore(self, definition_id: str) -> None:
        """Store again a definition this process knows and Redis lost (with its data), so that the
        runs started from it can be applied by any orchestrator."""
        stored = self._cache.get(definition_id)
        if stored is not None:
            async with translated_errors(self._url):
                await self._store(stored)

    async def get(self, definition_id: str) -> StoredDefinition:
        cached = self._cache.get(definition_id)
        if cached is not None:
            return cached
        async with translated_errors(self._url):
            raw = await self._client.get(self._keys.definition(definition_id))
        if raw is None:
            raise NotFound("workflow definition", definition_id)
        stored = decode_document(definition_id, str(raw))
        self._cache[definition_id] = stored
        return stored

    async def page(self, name: str | None, cursor: str | None, limit: int) -> Page[DefinitionSummary]:
        after = decode_cursor(cursor)
        async with translated_errors(self._url):
            members = await members_after(self._client, self._keys.definition_index(name), after, limit + 1)
            ids = [member for member, _ in members[:limit]]
            raw = await self._client.hmget(self._keys.definition_summaries, ids) if ids else []
        pairs = zip(ids, raw, strict=True)
        items = [decode_summary(definition_id, str(text)) for definition_id, text in pairs if text]
        more = len(members) > limit
        last = members[limit - 1] if more else None
        return Page(items, encode_cursor(Position(last[1], last[0])) if last else None)
