"""Definitions stored as their validated JSON source; compiled once per process.

Each registration takes the next version of its name (an atomic counter per name) and is indexed
by creation time, overall and per name, for listing.
"""

from __future__ import annotations

import dataclasses

from redis.asyncio.client import Pipeline

from adapters.redis.coalescer import Coalescer
from adapters.redis.codec.definitions import decode_document, decode_summary, encode_document, encode_summary
from adapters.redis.commit import Commit, CommitScript, Group
from adapters.redis.connection import Redis, translated_errors
from adapters.redis.keys import KeySpace
from adapters.redis.pages import members_after
from domain.errors import DefinitionAlreadyExists, NotFound
from domain.paging import Page, Position, decode_cursor, encode_cursor
from domain.ports import DefinitionSummary, StoredDefinition
from domain.shared_reads import SharedReads


class RedisDefinitionRepository:
    """``domain.ports.DefinitionRepository`` on Redis strings, with a version counter per name."""

    def __init__(self, client: Redis, keys: KeySpace, url: str) -> None:
        self._client = client
        self._keys = keys
        self._url = url
        self._cache: dict[str, StoredDefinition] = {}
        self._reads: SharedReads[str, StoredDefinition] = SharedReads()
        self._coalescer = Coalescer.for_client(client, url)
        self._commit = CommitScript(client)

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
        """An idempotent registration (its id derived from its key): one commit that checks the id
        is new and the version counter is what was read, and writes the next version with the
        definition (a concurrent registration of the name reads again), so racing replicas store
        it once and take one version."""
        versions = self._keys.definition_versions
        while True:
            current = str(await self._client.hget(versions, definition.name) or "")
            version = int(current or 0) + 1
            stored = dataclasses.replace(definition, version=version)
            commit = Commit()
            group = commit.group()
            is_new = group.require_equal(self._keys.definition_summaries, definition.definition_id, "")
            group.require_equal(versions, definition.name, current)
            group.hset(versions, {definition.name: str(version)})
            self._write(group, stored)
            (failed,) = await self._commit.one(commit)
            if failed == is_new:
                raise DefinitionAlreadyExists(definition.definition_id)
            if not failed:
                return stored

    async def _store(self, stored: StoredDefinition) -> None:
        commit = Commit()
        self._write(commit.group(), stored)
        await self._commit.one(commit)

    def _write(self, group: Group, stored: StoredDefinition) -> None:
        """The document, its summary and its index entries, written together (one hash tag on a
        cluster: ``KeySpace``)."""
        keys, definition_id = self._keys, stored.definition_id
        group.set(keys.definition(definition_id), encode_document(stored))
        group.hset(keys.definition_summaries, {definition_id: encode_summary(stored)})
        for index in (keys.definition_index(None), keys.definition_index(stored.name)):
            group.zadd(index, stored.created_at, definition_id)

    async def restore(self, definition_id: str) -> None:
        """Store again a definition this process knows and Redis lost (with its data), so that the
        runs started from it can be applied by any orchestrator."""
        stored = self._cache.get(definition_id)
        if stored is not None:
            async with translated_errors(self._url):
                await self._store(stored)

    async def get(self, definition_id: str) -> StoredDefinition:
        """From this process's cache; else read and compiled once for all who ask at that moment
        (a burst of run starts on a replica that has not seen the definition: each read on a
        connection of its own ran the pool out, and each compiled it), through the coalescer."""
        cached = self._cache.get(definition_id)
        if cached is not None:
            return cached
        return await self._reads.read(definition_id, lambda: self._load(definition_id))

    async def _load(self, definition_id: str) -> StoredDefinition:
        key = self._keys.definition(definition_id)

        def add(pipe: Pipeline) -> None:
            pipe.get(key)

        (raw,) = await self._coalescer.run(add)
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
