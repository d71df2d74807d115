"""Key names and the shard of a run."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from domain.messages import DEFAULT_QUEUE


@dataclass(frozen=True, slots=True)
class RunKeys:
    meta: str
    nodes: str
    out: str
    staged: str
    history: str
    items: str
    """Hash: item key (``node#i``) -> the final record of a map's item that ended."""
    item_out: str
    """Hash: item key -> the item's output (its error, failed)."""

    def all(self) -> tuple[str, ...]:
        return (self.meta, self.nodes, self.out, self.staged, self.history, self.items, self.item_out)

    def of_attempt(self, kind: str, node_id: str, attempt: int) -> str:
        """A key of one attempt of one of the run's nodes (``kind``: ``log``, ``cancel``), beside
        the run's keys: same hash tag, so the run's shard holds it."""
        return f"{self.meta}:{kind}:{node_id}:{attempt}"


@dataclass(frozen=True, slots=True)
class ShardKeys:
    tasks: str
    events: str
    timers: str
    dead: str
    lease: str
    """Who reads the shard's events (``leases``)."""
    run_prefix: str
    run_index_prefix: str
    """A run status appended: the shard's runs in that status, scored by creation time."""
    changes: str
    """Pub/sub channel: the id of each of the shard's runs whose transition was committed."""

    def run_index(self, status: str) -> str:
        return self.run_index_prefix + status

    def tasks_of(self, queue: str) -> str:
        """The task stream of one queue (worker pool) of the shard; the default queue's is
        ``tasks`` itself, as before queues existed."""
        return self.tasks if queue == DEFAULT_QUEUE else f"{self.tasks}:{queue}"


EVENTS_GROUP, TASKS_GROUP = "orchestrators", "workers"
"""The consumer groups of the event streams and of the task streams."""
RUN_KEYS_CACHED = 10_000


class KeySpace:
    """``cluster``: the definitions' keys share one hash tag, so that a registration (the next
    version, the document, its indexes) is one transaction on a Redis Cluster too. (On one server
    they keep their earlier names: data stored before stays readable.)"""

    def __init__(self, prefix: str, shards: int, cluster: bool = False) -> None:
        self.prefix = prefix
        self.shards = shards
        self._definitions = f"{prefix}:{{defs}}" if cluster else prefix
        self._shards = [self._shard_keys(number) for number in range(shards)]
        self._run_keys: dict[str, RunKeys] = {}
        """Key names of recent runs: every event of a run needs them, each time built of 5 strings."""

    def _shard_keys(self, number: int) -> ShardKeys:
        base = f"{self.prefix}:{{s{number}}}"
        return ShardKeys(
            tasks=f"{base}:tasks",
            events=f"{base}:events",
            timers=f"{base}:timers",
            dead=f"{base}:dead",
            lease=f"{base}:lease",
            run_prefix=f"{base}:run:",
            run_index_prefix=f"{base}:runs:",
            changes=f"{base}:changes",
        )

    def shard_of(self, run_id: str) -> int:
        return zlib.crc32(run_id.encode()) % self.shards

    def shard(self, number: int) -> ShardKeys:
        return self._shards[number]

    def shard_for_run(self, run_id: str) -> ShardKeys:
        return self._shards[self.shard_of(run_id)]

    def all_shards(self) -> list[ShardKeys]:
        return list(self._shards)

    def run(self, run_id: str) -> RunKeys:
        keys = self._run_keys.get(run_id)
        if keys is None:
            if len(self._run_keys) >= RUN_KEYS_CACHED:
                self._run_keys.clear()  # runs come and go: a bound, not an LRU
            base = self._shards[self.shard_of(run_id)].run_prefix + run_id
            keys = self._run_keys[run_id] = RunKeys(
                meta=base,
                nodes=f"{base}:nodes",
                out=f"{base}:out",
                staged=f"{base}:staged",
                history=f"{base}:history",
                items=f"{base}:items",
                item_out=f"{base}:item_out",
            )
        return keys

    @property
    def orchestrators(self) -> str:
        """Sorted set: live orchestrators, scored by when their membership lapses (ms since epoch)."""
        return f"{self.prefix}:orchestrators"

    def definition(self, definition_id: str) -> str:
        return f"{self._definitions}:def:{definition_id}"

    @property
    def definition_versions(self) -> str:
        """Hash: workflow name -> its latest version number."""
        return f"{self._definitions}:defs:versions"

    @property
    def definition_summaries(self) -> str:
        """Hash: definition id -> a JSON summary (name, version, created_at, node count)."""
        return f"{self._definitions}:defs:summaries"

    def definition_index(self, name: str | None) -> str:
        """Sorted set of definition ids by creation time: all of them, or those of one name."""
        base = f"{self._definitions}:defs"
        return f"{base}:all" if name is None else f"{base}:name:{name}"

    @property
    def workers(self) -> str:
        """Set: ids of workers that announced themselves (``worker``); pruned as their keys lapse."""
        return f"{self.prefix}:workers"

    def worker(self, worker_id: str) -> str:
        """String with a TTL: what one live worker serves (queues, handlers), refreshed by it."""
        return f"{self.prefix}:worker:{worker_id}"

    def slots(self, key: str) -> tuple[str, str, str]:
        """The sorted sets of a concurrency key (``slots``): holders, line, seen; one hash tag."""
        # The tag is the key's checksum: a key may hold braces, which would change the hash tag.
        base = f"{self.prefix}:slots:{{{zlib.crc32(key.encode()):08x}}}:{key}"
        return f"{base}:holders", f"{base}:line", f"{base}:seen"

    def rate_bucket(self, key: str) -> str:
        """Hash: the API rate limit's bucket of one client (a token's name or an address)."""
        return f"{self.prefix}:rate:{key}"
