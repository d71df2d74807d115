"""Events, tasks and timers as flat stream fields.

A node's output travels in a success's entry (field ``o``) only when it is small; otherwise the worker
stages it in the run's ``staged`` hash (field ``staged_field(node, attempt)``) and the event refers to it.
A timer is a member of its shard's sorted set: the fields of the event it will send, as a JSON array
(the timer script moves it onto the event stream as it is).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from domain.events import (
    AttemptTimedOut,
    CancelRequested,
    Event,
    EventDeadLettered,
    HeartbeatReceived,
    NodeFailed,
    NodeStarted,
    NodeSucceeded,
    RedriveRequested,
    RetryDue,
    RunStarted,
    RunTimedOut,
)
from domain.messages import DEFAULT_QUEUE, Task

type Fields = dict[str, str]


class _Staged:
    """Stands for the output of a success whose output was staged in the run's state."""

    def __repr__(self) -> str:
        return "STAGED"


STAGED = _Staged()


class MalformedEntry(ValueError):
    """A stream entry that is not a message this engine wrote."""


encode_compact = json.JSONEncoder(separators=(",", ":")).encode
"""Compact JSON (``json.dumps`` with arguments would make a new encoder per call)."""


def staged_field(node_id: str, attempt: int) -> str:
    """The field of the run's ``staged`` hash that holds a large output of (node, attempt)."""
    return f"{node_id}\n{attempt}"


def encode_timer(event: Event) -> str:
    """A timer's member: the event's fields, flat, as a JSON array."""
    return encode_compact([part for pair in encode_event(event).items() for part in pair])


def encode_event(event: Event) -> Fields:
    match event:
        case RunStarted():
            started = {"k": "start", "r": event.run_id, "t": repr(event.at)}
            if event.definition_id is not None:
                started["d"] = event.definition_id
            if event.started_by is not None:
                started["by"] = event.started_by
            return started
        case NodeStarted():
            return {
                "k": "started",
                "r": event.run_id,
                "n": event.node_id,
                "a": str(event.attempt),
                "t": repr(event.at),
                "w": event.worker_id,
            }
        case NodeSucceeded():
            return {
                "k": "ok",
                "r": event.run_id,
                "n": event.node_id,
                "a": str(event.attempt),
                "t": repr(event.at),
                **_ran_by(event.worker_id, event.started_at),
            }
        case NodeFailed():
            return {
                "k": "fail",
                "r": event.run_id,
                "n": event.node_id,
                "a": str(event.attempt),
                "t": repr(event.at),
                "et": event.error_type,
                "em": event.message,
                "rt": "1" if event.retryable else "0",
                **_ran_by(event.worker_id, event.started_at),
            }
        case AttemptTimedOut():
            return {
                "k": "timeout",
                "r": event.run_id,
                "n": event.node_id,
                "a": str(event.attempt),
                "t": repr(event.at),
            }
        case HeartbeatReceived():
            beat = {
                "k": "beat",
                "r": event.run_id,
                "n": event.node_id,
                "a": str(event.attempt),
                "t": repr(event.at),
                **_ran_by(event.worker_id, event.started_at),
            }
            if event.details is not None:
                beat["d"] = encode_compact(event.details)
            return beat
        case RetryDue():
            return {
                "k": "retry",
                "r": event.run_id,
                "n": event.node_id,
                "a": str(event.attempt),
                "t": repr(event.at),
            }
        case RunTimedOut():
            return {"k": "run_timeout", "r": event.run_id, "t": repr(event.at)}
        case CancelRequested():
            cancel = {"k": "cancel", "r": event.run_id, "t": repr(event.at)}
            if event.cancelled_by is not None:
                cancel["by"] = event.cancelled_by
            return cancel
        case RedriveRequested():
            return {
                "k": "redrive",
                "r": event.run_id,
                "t": repr(event.at),
                "from": json.dumps(event.from_nodes),
            }
        case EventDeadLettered():
            about = {} if event.node_id is None else {"n": event.node_id, "a": str(event.attempt)}
            return {"k": "dead", "r": event.run_id, "t": repr(event.at), "em": event.message, **about}


def decode_event(fields: Mapping[str, str]) -> Event:
    try:
        kind, run_id, at = fields["k"], fields["r"], _time(fields["t"])
        if kind == "start":
            return RunStarted(run_id, at, fields.get("d"), fields.get("by"))
        if kind == "cancel":
            return CancelRequested(run_id, at, fields.get("by"))
        if kind == "redrive":
            return RedriveRequested(run_id, at, tuple(json.loads(fields.get("from", "[]"))))
        if kind == "run_timeout":
            return RunTimedOut(run_id, at)
        if kind == "dead" and "n" not in fields:
            return EventDeadLettered(run_id, None, 0, fields["em"], at)
        node_id, attempt = fields["n"], int(fields["a"])
        if kind == "started":
            return NodeStarted(run_id, node_id, attempt, fields["w"], at)
        worker_id, started_at = fields.get("w", ""), _optional_time(fields.get("s"))
        if kind == "ok":
            output = json.loads(fields["o"]) if "o" in fields else STAGED
            return NodeSucceeded(run_id, node_id, attempt, output, at, worker_id, started_at)
        if kind == "fail":
            retryable = fields["rt"] == "1"
            return NodeFailed(
                run_id, node_id, attempt, fields["et"], fields["em"], at, retryable, worker_id, started_at
            )
        if kind == "timeout":
            return AttemptTimedOut(run_id, node_id, attempt, at)
        if kind == "beat":
            details = json.loads(fields["d"]) if "d" in fields else None
            return HeartbeatReceived(run_id, node_id, attempt, at, worker_id, started_at, details)
        if kind == "retry":
            return RetryDue(run_id, node_id, attempt, at)
        if kind == "dead":
            return EventDeadLettered(run_id, node_id, attempt, fields["em"], at)
    except (KeyError, ValueError) as error:
        raise MalformedEntry(f"not an event entry: {dict(fields)!r} ({error})") from None
    raise MalformedEntry(f"unknown event kind {kind!r}")


def _ran_by(worker_id: str, started_at: float | None) -> Fields:
    fields = {"w": worker_id} if worker_id else {}
    if started_at is not None:
        fields["s"] = repr(started_at)
    return fields


def _time(value: str) -> float:
    # NaN or infinity would reach the run aggregate and become a retry or a deadline no timer can
    # hold; an entry carrying one is not a message this engine wrote.
    moment = float(value)
    if not math.isfinite(moment):
        raise ValueError(f"time {value!r} is not a finite number")
    return moment


def _optional_time(value: str | None) -> float | None:
    return None if not value else _time(value)


def encode_task(task: Task) -> Fields:
    fields = {
        "r": task.run_id,
        "d": task.definition_id,
        "n": task.node_id,
        "a": str(task.attempt),
        "h": task.handler,
    }
    if task.queue != DEFAULT_QUEUE:  # the stream says it too; kept so a requeued entry keeps it
        fields["q"] = task.queue
    return fields


def decode_task(fields: Mapping[str, str]) -> Task:
    try:
        return Task(
            fields["r"],
            fields["d"],
            fields["n"],
            int(fields["a"]),
            fields["h"],
            fields.get("q", DEFAULT_QUEUE),
        )
    except (KeyError, ValueError) as error:
        raise MalformedEntry(f"not a task entry: {dict(fields)!r} ({error})") from None
