"""Building the arguments of ``lua/commit.lua``: groups of checks and writes over declared keys.

The script is generic: it checks that what a decision was based on is still stored, then writes.
Every key a commit touches is declared (``KEYS``), so the script runs unchanged on Redis Cluster as
long as the keys share one hash tag. It is also this adapter's only way of writing several keys at
once (no MULTI: redis-py's asyncio cluster client cannot run concurrent transactions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from adapters.redis.connection import Redis
from adapters.redis.scripts import Script, run_scripts


class Group:
    """The checks and writes of one run: written together or not at all."""

    __slots__ = ("_checks", "_commit", "_op_count", "_ops", "tag")

    def __init__(self, commit: Commit, tag: Any) -> None:
        self._commit = commit
        self._checks: list[str] = []
        self._ops: list[str] = []
        self._op_count = 0
        self.tag = tag
        """The caller's own value, to know what a reply is about."""

    @property
    def check_count(self) -> int:
        return len(self._checks) // 4

    def require_equal(self, key: str, field: str, expected: str) -> int:
        """``field`` of hash ``key`` must be ``expected`` ("" for absent); returns the check's number."""
        self._checks += ("eq", str(self._commit.key(key)), field, expected)
        return self.check_count

    def require_field(self, key: str, field: str) -> int:
        """Hash ``key`` must have ``field``; returns the check's number."""
        self._checks += ("has", str(self._commit.key(key)), field, "")
        return self.check_count

    def hset(self, key: str, mapping: Mapping[str, str]) -> None:
        if mapping:
            self._op("HSET", key, [part for pair in mapping.items() for part in pair])

    def hdel(self, key: str, fields: Sequence[str]) -> None:
        if fields:
            self._op("HDEL", key, fields)

    def hmove(self, key: str, field: str, destination: str, destination_field: str) -> None:
        self._op("HMOVE", key, [field, str(self._commit.key(destination)), destination_field])

    def rpush(self, key: str, values: Sequence[str]) -> None:
        if values:
            self._op("RPUSH", key, values)

    def zadd(self, key: str, score: float, member: str) -> None:
        self._op("ZADD", key, [repr(score), member])

    def zrem(self, key: str, member: str) -> None:
        self._op("ZREM", key, [member])

    def xadd(self, key: str, fields: Mapping[str, str]) -> None:
        self._op("XADD", key, [part for pair in fields.items() for part in pair])

    def xack(self, key: str, group: str, entry_ids: Sequence[str]) -> None:
        if entry_ids:
            self._op("XACK", key, [group, *entry_ids])

    def publish(self, channel: str, message: str) -> None:
        """Tell the channel's subscribers, once the group is written (declared like a key, so it
        carries the shard's hash tag)."""
        self._op("PUBLISH", channel, [message])

    def set(self, key: str, value: str) -> None:
        self._op("SET", key, [value])

    def ltrim(self, key: str, start: int, stop: int) -> None:
        self._op("LTRIM", key, [str(start), str(stop)])

    def expire(self, key: str, seconds: int) -> None:
        self._op("EXPIRE", key, [str(seconds)])

    def persist(self, key: str) -> None:
        self._op("PERSIST", key, [])

    def _op(self, name: str, key: str, arguments: Sequence[str]) -> None:
        self._ops += (name, str(self._commit.key(key)), str(len(arguments)), *arguments)
        self._op_count += 1

    def arguments(self) -> list[str]:
        return [str(self.check_count), *self._checks, str(self._op_count), *self._ops]


class Commit:
    """One call of the commit script: the groups of one shard."""

    def __init__(self) -> None:
        self._keys: dict[str, int] = {}
        self.groups: list[Group] = []

    def key(self, name: str) -> int:
        """The 1-based position of ``name`` among the declared keys."""
        position = self._keys.get(name)
        if position is None:
            position = self._keys[name] = len(self._keys) + 1
        return position

    def group(self, tag: Any = None) -> Group:
        group = Group(self, tag)
        self.groups.append(group)
        return group

    def call(self) -> tuple[list[str], list[str]]:
        """(KEYS, ARGV) of the script call."""
        arguments: list[str] = []
        for group in self.groups:
            arguments += group.arguments()
        return list(self._keys), arguments


class CommitScript:
    """``lua/commit.lua`` on one client."""

    def __init__(self, client: Redis) -> None:
        self._client = client
        self.script = Script("commit")

    async def one(self, commit: Commit) -> list[int]:
        """Run one commit; the number of the failed check of each group (0: written)."""
        (reply,) = await self.execute([commit])
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def execute(self, commits: Sequence[Commit]) -> list[list[int] | Exception]:
        """Run the commits in one pipeline; per commit, the number of the failed check of each group
        (0: written), or the error the script raised for it."""
        replies = await run_scripts(self._client, self.script, [commit.call() for commit in commits])
        return [reply if isinstance(reply, Exception) else [int(r) for r in reply] for reply in replies]
