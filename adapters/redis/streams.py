"""At-least-once queues on Redis Streams with consumer groups.

Entries stay pending until acknowledged. A consumer that stops (crash, pause) leaves its entries
pending; after the visibility timeout any consumer of the group reclaims them (XPENDING + XCLAIM).
A live consumer keeps a long entry fresh with ``extend`` (XCLAIM JUSTID, which resets the idle time
without counting a delivery). An entry delivered ``max_deliveries`` times, or one that cannot be
decoded, goes to the shard's dead-letter stream. An entry whose consumers went quiet twice while
holding it is a suspect: it is reclaimed alone and marked so (``Delivery.suspect``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from adapters.errors import AdapterError
from adapters.redis.coalescer import Coalescer
from adapters.redis.codec import MalformedEntry
from adapters.redis.connection import Redis, is_cluster, translated_errors
from adapters.redis.scripts import Script, with_script
from adapters.redis.slotwise_reads import SlotwiseReads
from adapters.redis.stream_metrics import DEAD_LETTERED, RECLAIMED
from domain.ports import Delivery

log = logging.getLogger(__name__)

type Fields = dict[str, str]

# An entry delivered this many times already had its consumer go quiet twice: it may be the cause.
SUSPECT_AFTER_DELIVERIES = 2


@dataclass(frozen=True, slots=True)
class StreamConfig:
    streams: tuple[str, ...]
    dead_letters: tuple[str, ...]
    group: str
    visibility_timeout_seconds: float
    max_deliveries: int
    prune_idle_consumers_seconds: float = 600.0
    kind: str = "stream"
    """What the streams carry (``events``, ``tasks``): the label of their metrics."""


type StreamStats = tuple[str, int, int, int | None]
"""(stream, length, entries pending in the group, the group's lag: entries not yet delivered)."""


@dataclass(frozen=True, slots=True)
class DeadLetter[T]:
    stream: str
    entry_id: str
    message: T | None
    deliveries: int
    reason: str


class RedisStreamQueue[T]:
    """``domain.ports.MessageQueue`` over one stream per shard, read together."""

    def __init__(
        self,
        client: Redis,
        url: str,
        config: StreamConfig,
        encode: Callable[[T], Fields],
        decode: Callable[[Mapping[str, str]], T],
        route: Callable[[T], int],
        on_dead_letter: Callable[[DeadLetter[T]], Awaitable[None]] | None = None,
    ) -> None:
        self._client = client
        self._url = url
        self._config = config
        self._encode = encode
        self._decode = decode
        self._route = route
        self._on_dead_letter = on_dead_letter
        self._index = {stream: number for number, stream in enumerate(config.streams)}
        self._coalescer = Coalescer.for_client(client, url)
        self._slotwise = SlotwiseReads(self._read_stream) if is_cluster(client) else None
        self._prune = Script("prune_consumers")
        self._acks: dict[str, list[str]] = {}
        self._acking: asyncio.Future[list[Any]] | None = None
        self._groups_ready = False
        self._consumer = ""
        self._next_reclaim = 0.0
        # COUNT applies per stream, so a read over every shard can return more than was asked for;
        # the rest waits here (already claimed by this consumer) for the next receive.
        self._overflow: list[Delivery[T]] = []

    # -- sending -----------------------------------------------------------------------------------

    async def send(self, messages: Sequence[T]) -> None:
        if not messages:
            return

        def add(pipe: Pipeline) -> None:
            for message in messages:
                self._add_send(pipe, message)

        await self._coalescer.run(add)

    def _add_send(self, pipe: Pipeline, message: T) -> None:
        stream = self._config.streams[self._route(message)]
        pipe.xadd(stream, self._encode(message))  # type: ignore[arg-type]

    # -- receiving ---------------------------------------------------------------------------------

    async def ensure_groups(self) -> None:
        """Create the group on every stream, reading from the start so nothing sent before is missed."""
        async with translated_errors(self._url):
            for stream in self._config.streams:
                try:
                    await self._client.xgroup_create(stream, self._config.group, id="0", mkstream=True)
                except ResponseError as error:
                    if "BUSYGROUP" not in str(error):
                        raise
        self._groups_ready = True

    async def receive(self, consumer: str, max_count: int, block_seconds: float) -> list[Delivery[T]]:
        if self._overflow:
            return self._take(self._overflow, max_count)
        if not self._groups_ready:
            await self.ensure_groups()
        streams = await self._streams_to_read(consumer)
        if not streams:
            await asyncio.sleep(min(block_seconds, self._longest_block()))  # nothing to read for now
            return []
        if time.monotonic() >= self._next_reclaim:
            self._next_reclaim = time.monotonic() + self._config.visibility_timeout_seconds / 4
            reclaimed = await self._reclaim(consumer, max_count, streams)
            if reclaimed:
                return self._take(reclaimed, max_count)
        try:
            response = await self._read_group(
                consumer, streams, max_count, min(block_seconds, self._longest_block())
            )
        except AdapterError as error:
            if "NOGROUP" in str(error):
                # The stream or group is gone (a Redis restarted without its data): recreate them.
                self._groups_ready = False
            raise
        deliveries: list[Delivery[T]] = []
        for stream, entries in response or []:
            await self._decode_entries(stream, entries, deliveries, 1)
        return self._take(deliveries, max_count)

    async def _streams_to_read(self, consumer: str) -> list[str]:
        """The streams ``consumer`` reads and reclaims from: every one (a subclass may share them
        out among consumers)."""
        return list(self._config.streams)

    def _longest_block(self) -> float:
        """How long one read may wait (a subclass with leases to renew waits less)."""
        return float("inf")

    async def _read_group(
        self, consumer: str, streams: list[str], max_count: int, block_seconds: float
    ) -> Any:
        block_ms = max(1, int(block_seconds * 1000))
        async with translated_errors(self._url):
            if self._slotwise is not None:
                self._consumer = consumer
                return await self._slotwise.read(streams, max_count, block_ms)
            return await self._client.xreadgroup(
                self._config.group, consumer, dict.fromkeys(streams, ">"), count=max_count, block=block_ms
            )

    async def _read_stream(self, stream: str, count: int, block_ms: int) -> Any:
        """One stream's blocking read (``SlotwiseReads``), for the consumer of the latest receive."""
        return await self._client.xreadgroup(
            self._config.group, self._consumer, {stream: ">"}, count=count, block=block_ms
        )

    async def close(self) -> None:
        """Stop the reads still waiting (on a cluster)."""
        if self._slotwise is not None:
            await self._slotwise.close()

    def _take(self, deliveries: list[Delivery[T]], max_count: int) -> list[Delivery[T]]:
        self._overflow = deliveries[max_count:]
        return deliveries[:max_count]

    async def _decode_entries(
        self, stream: str, entries: list[Any], into: list[Delivery[T]], deliveries: int
    ) -> None:
        for entry_id, fields in entries:
            if fields is None:  # deleted while pending (trimmed by someone else): nothing to do
                await self._ack_ids(stream, [entry_id])
                continue
            try:
                message = self._decode(fields)
            except MalformedEntry as error:
                log.error("dead-lettering malformed entry %s of %s: %s", entry_id, stream, error)
                await self._dead_letter(stream, entry_id, fields, None, deliveries, str(error))
                continue
            into.append(Delivery(message, receipt_of(self._index[stream], entry_id)))

    async def _reclaim(self, consumer: str, max_count: int, streams: list[str]) -> list[Delivery[T]]:
        """Take over entries of ``streams`` idle longer than the visibility timeout; dead-letter the
        exhausted.

        Entries taken back before (their consumers went quiet twice or more) are suspects: one of
        them is claimed alone, and only when nothing else is waiting to be reclaimed, so that a
        task that kills its worker no longer takes the tasks held beside it down with it."""
        idle_ms = int(self._config.visibility_timeout_seconds * 1000)
        reclaimed: list[Delivery[T]] = []
        suspects: list[tuple[str, dict[str, Any]]] = []
        async with translated_errors(self._url):
            for stream in streams:
                pending: list[dict[str, Any]] = await self._client.xpending_range(
                    stream, self._config.group, min="-", max="+", count=max_count, idle=idle_ms
                )
                if not pending:
                    continue
                exhausted = [p for p in pending if p["times_delivered"] >= self._config.max_deliveries]
                for item in await self._claim_exhausted(stream, consumer, idle_ms, exhausted):
                    await self._exhausted(stream, item["message_id"], item["times_delivered"])
                rest = [p for p in pending if p not in exhausted]
                suspects += [(stream, p) for p in rest if p["times_delivered"] >= SUSPECT_AFTER_DELIVERIES]
                ids: list[Any] = [
                    p["message_id"] for p in rest if p["times_delivered"] < SUSPECT_AFTER_DELIVERIES
                ]
                if ids:
                    entries = await self._client.xclaim(
                        stream, self._config.group, consumer, min_idle_time=idle_ms, message_ids=ids
                    )
                    log.warning("reclaimed %d idle entries of %s for %s", len(entries), stream, consumer)
                    RECLAIMED.labels(self._config.kind).inc(len(entries))
                    await self._decode_entries(stream, entries, reclaimed, 2)
            if not reclaimed:
                return await self._reclaim_one_suspect(consumer, idle_ms, suspects)
        return reclaimed

    async def _reclaim_one_suspect(
        self, consumer: str, idle_ms: int, suspects: list[tuple[str, dict[str, Any]]]
    ) -> list[Delivery[T]]:
        if len(suspects) > 1:
            # The next one on the next receive, not a reclaim interval later: a worker that died
            # holding many tasks leaves many suspects, each now handled alone.
            self._next_reclaim = 0.0
        for stream, item in suspects:
            entries = await self._client.xclaim(
                stream, self._config.group, consumer, min_idle_time=idle_ms, message_ids=[item["message_id"]]
            )
            taken: list[Delivery[T]] = []
            await self._decode_entries(stream, entries, taken, item["times_delivered"] + 1)
            if taken:
                RECLAIMED.labels(self._config.kind).inc()
                log.warning(
                    "reclaimed suspect entry %s of %s for %s (delivery %d): to be handled alone",
                    item["message_id"],
                    stream,
                    consumer,
                    item["times_delivered"] + 1,
                )
                return [replace(taken[0], suspect=True)]
        return []

    async def _claim_exhausted(
        self, stream: str, consumer: str, idle_ms: int, exhausted: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Keep only the exhausted entries this consumer wins: consumers reclaiming at the same
        moment all see them pending, and only one of them may dead-letter each. JUSTID leaves the
        delivery count as it is."""
        if not exhausted:
            return []
        won = await self._client.xclaim(
            stream,
            self._config.group,
            consumer,
            min_idle_time=idle_ms,
            message_ids=[item["message_id"] for item in exhausted],
            justid=True,
        )
        won_ids = set(won)
        return [item for item in exhausted if item["message_id"] in won_ids]

    async def _exhausted(self, stream: str, entry_id: str, deliveries: int) -> None:
        entries = await self._client.xrange(stream, min=entry_id, max=entry_id)
        fields: Mapping[str, str] = cast(Any, entries[0][1]) if entries else {}
        try:
            message: T | None = self._decode(fields)
        except MalformedEntry:
            message = None
        reason = f"delivered {deliveries} times without being acknowledged"
        log.error("dead-lettering entry %s of %s: %s", entry_id, stream, reason)
        await self._dead_letter(stream, entry_id, fields, message, deliveries, reason)

    async def _dead_letter(
        self,
        stream: str,
        entry_id: str,
        fields: Mapping[str, str],
        message: T | None,
        deliveries: int,
        reason: str,
    ) -> None:
        dead = self._config.dead_letters[self._index[stream]]
        record = {**fields, "dead.source": stream, "dead.id": entry_id, "dead.reason": reason}
        async with translated_errors(self._url):
            await self._client.xadd(dead, record)  # type: ignore[arg-type]
        DEAD_LETTERED.labels(self._config.kind).inc()
        if self._on_dead_letter is not None:
            await self._on_dead_letter(DeadLetter(dead, entry_id, message, deliveries, reason))
        await self._ack_ids(stream, [entry_id])

    # -- acknowledging -----------------------------------------------------------------------------

    def _by_stream(self, deliveries: Sequence[Delivery[T]]) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for delivery in deliveries:
            number, entry_id = entry_of(delivery.receipt)
            grouped.setdefault(self._config.streams[number], []).append(entry_id)
        return grouped

    async def ack(self, deliveries: Sequence[Delivery[T]]) -> None:
        """Acknowledgements made at the same moment leave as one XACK per stream."""
        if not deliveries:
            return
        for stream, ids in self._by_stream(deliveries).items():
            self._acks.setdefault(stream, []).extend(ids)
        if self._acking is None:
            loop = asyncio.get_running_loop()
            self._acking = asyncio.Task(self._coalescer.run(self._add_acks), loop=loop, eager_start=True)
        await asyncio.shield(self._acking)

    def _add_acks(self, pipe: Pipeline) -> None:
        acks, self._acks, self._acking = self._acks, {}, None
        for stream, ids in acks.items():
            pipe.xack(stream, self._config.group, *ids)

    async def _ack_ids(self, stream: str, ids: list[str]) -> None:
        async with translated_errors(self._url):
            await self._client.xack(stream, self._config.group, *ids)

    async def extend(self, consumer: str, deliveries: Sequence[Delivery[T]]) -> None:
        """Heartbeat: reset the idle time of entries this consumer still works on, and of those
        it holds here for its next receive."""
        deliveries = [*deliveries, *self._overflow]
        if not deliveries:
            return
        async with translated_errors(self._url):
            pipe = self._client.pipeline(transaction=False)
            for stream, ids in self._by_stream(deliveries).items():
                pipe.xclaim(
                    stream,
                    self._config.group,
                    consumer,
                    min_idle_time=0,
                    message_ids=ids,  # type: ignore[arg-type]
                    justid=True,
                )
            await pipe.execute()

    # -- housekeeping ------------------------------------------------------------------------------

    async def stream_stats(self) -> list[StreamStats]:
        """Length, pending entries and lag of every stream, for this queue's group (one round trip;
        for metrics, never on the hot path). A stream not made yet counts as empty."""
        async with translated_errors(self._url):
            pipe = self._client.pipeline(transaction=False)
            for stream in self._config.streams:
                pipe.xlen(stream)
                pipe.xinfo_groups(stream)
            replies = await pipe.execute(raise_on_error=False)
        stats: list[StreamStats] = []
        for number, stream in enumerate(self._config.streams):
            length, groups = replies[2 * number], replies[2 * number + 1]
            mine = (
                []
                if isinstance(groups, Exception)
                else [g for g in groups if g["name"] == self._config.group]
            )
            pending = int(mine[0]["pending"]) if mine else 0
            lag = mine[0].get("lag") if mine else None
            stats.append((stream, 0 if isinstance(length, Exception) else int(length), pending, lag))
        return stats

    async def maintain(self) -> None:
        """Trim below what is still pending or undelivered; remove idle consumers holding nothing."""
        if not self._groups_ready:
            await self.ensure_groups()
        async with translated_errors(self._url):
            for stream in self._config.streams:
                await self._trim(stream)
                await self._prune_consumers(stream, self._config.prune_idle_consumers_seconds)

    async def _trim(self, stream: str) -> None:
        groups = await self._client.xinfo_groups(stream)
        floor: str | None = None
        for group in groups:
            summary = await self._client.xpending(stream, group["name"])
            candidates = [group["last-delivered-id"]]
            if summary["pending"]:
                candidates.append(summary["min"])
            lowest = min(candidates, key=_entry_order)
            floor = lowest if floor is None else min(floor, lowest, key=_entry_order)
        if floor is not None and floor != "0-0":
            # MINID keeps the floor entry itself: it is pending or the last delivered one.
            await self._client.xtrim(stream, minid=floor, approximate=False)

    async def _prune_consumers(self, stream: str, idle_seconds: float) -> None:
        # In one script: a consumer that reads between a check and a delete would lose its entries.
        idle_ms = str(int(idle_seconds * 1000))
        await with_script(
            self._client,
            self._prune,
            lambda sha: self._client.evalsha(sha, 1, stream, self._config.group, idle_ms),
        )


def receipt_of(stream_number: int, entry_id: str) -> str:
    """A delivery's receipt: which of the queue's streams (its shard) and which entry."""
    return f"{stream_number}|{entry_id}"


def entry_of(receipt: str) -> tuple[int, str]:
    """The stream number (the shard) and entry id of a receipt (``receipt_of``)."""
    number, entry_id = receipt.split("|", 1)
    return int(number), entry_id


def _entry_order(entry_id: str) -> tuple[int, int]:
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)
