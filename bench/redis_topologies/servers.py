"""What the Redis topologies share: servers that replicate without delay, one-command calls with
timeouts, and polling a condition with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from bench.processes import LOOPBACK, ProcessFailed, RedisServer

POLL_SECONDS = 0.05
ADMIN_TIMEOUT_SECONDS = 2.0
STOP_GRACE_SECONDS = 10.0
# The initial synchronisation of a replica waits this long for more replicas to join the same
# transfer (redis 7 default: 5 s); a topology of tests has nothing to wait for.
REPLICATION_OPTIONS = ("--repl-diskless-sync-delay", "0")


class NotYet(Exception):
    """A condition being polled for does not hold yet; the message says why."""


def poll[T](what: str, condition: Callable[[], T], timeout: float) -> T:
    """``condition()``'s value once it returns instead of raising ``NotYet`` (or a connection error
    of a node still starting or just killed); ``ProcessFailed`` naming ``what`` and the last reason
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return condition()
        except (NotYet, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as why:
            reason = str(why) or type(why).__name__
        if time.monotonic() > deadline:
            raise ProcessFailed(f"{what}: not within {timeout:g} s (last: {reason})")
        time.sleep(POLL_SECONDS)


def call(port: int, *command: str | int) -> Any:
    """The reply to one command (decoded, through redis-py's response callbacks) from the server at
    ``port``, on a short-lived connection with timeouts: a killed or paused node fails the call
    instead of hanging it."""
    client = redis.Redis(
        host=LOOPBACK,
        port=port,
        decode_responses=True,
        socket_timeout=ADMIN_TIMEOUT_SECONDS,
        socket_connect_timeout=ADMIN_TIMEOUT_SECONDS,
    )
    try:
        return client.execute_command(*command)  # type: ignore[no-untyped-call]
    finally:
        client.close()


def info_fields(text: str) -> dict[str, str]:
    """``field:value`` lines (CLUSTER INFO) as a dict."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, colon, value = line.strip().partition(":")
        if colon:
            fields[name] = value
    return fields


def replication_info(port: int) -> dict[str, str]:
    """INFO replication (its values as text)."""
    return {name: str(value) for name, value in call(port, "INFO", "replication").items()}


def replica_online(primary_port: int) -> None:
    """Raises ``NotYet`` until the primary's first replica is online (its full synchronisation is
    over: it acknowledges writes, so WAIT can be met); for ``poll``."""
    replica = call(primary_port, "INFO", "replication").get("slave0")
    if not isinstance(replica, dict) or replica.get("state") != "online":
        raise NotYet(f"the replica is not online yet: {replica}")


def role(port: int) -> str:
    """``master`` or ``slave``, from ROLE."""
    return str(call(port, "ROLE")[0])


class ReplicatedRedisServer(RedisServer):
    """A ``RedisServer`` that replicates, or is replicated, without delay; ``replica_of`` (a port on
    loopback) starts it as a replica of that server."""

    def __init__(
        self,
        binary: str,
        folder: Path,
        *,
        port: int,
        replica_of: int | None = None,
        appendfsync: str | None = "everysec",
        die_with_parent: bool = False,
    ) -> None:
        super().__init__(binary, folder, appendfsync=appendfsync, die_with_parent=die_with_parent, port=port)
        self.replica_of = replica_of

    def command(self) -> list[str]:
        replica = [] if self.replica_of is None else ["--replicaof", LOOPBACK, str(self.replica_of)]
        return [*super().command(), *REPLICATION_OPTIONS, *replica]
