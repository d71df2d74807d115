"""A run's state in Redis: its meta hash, its nodes hash, its outputs and its history list.

- meta (hash): the run's fields (``META``), times as ``repr`` floats, and ``v``, the number of
  commits made to the run (a commit checks it: the state it decided on is still the state stored);
- nodes (hash): node id -> the node's state as compact JSON (``encode_node``); a node not in the
  hash is in its initial state (``NodeRun.initial``), so a new run writes no node at all; beside
  them, item key (``node#i``) -> the state of a map's item in flight (``encode_item``), and
  ``node!i`` -> ``f`` or ``r``: the item is in ``MapState.failed_items`` or ``MapState.redo``;
- out (hash): node id -> output JSON (a map node's: ``@map:<count>``, its items' outputs being in
  ``item_out``); history (list): one ``HistoryEntry.to_json`` per entry;
- items, item_out (hashes): item key -> the final record, and the output, of a map's item that ended.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters.redis.codec.messages import encode_compact
from domain.history import HistoryEntry
from domain.idempotency import IdempotentStart
from domain.map_run import FAILED_MARK
from domain.map_spec import MapOutput, split_key
from domain.map_state import ItemRun, MapState
from domain.node_state import ErrorInfo, FailedAttempt, NodeRun
from domain.plan import WorkflowPlan
from domain.ports import RunSummary, run_revision
from domain.run import Run
from domain.statuses import NodeStatus, RunStatus

VERSION = "v"
STATUS = "status"
SUMMARY_FIELDS = ("status", "definition_id", "workflow", "created_at", "started_at", "finished_at")
REVISION_FIELDS = (VERSION, "created_at")
"""The meta fields a run's revision is made of (``decode_revision``)."""


def _time(value: float | None) -> str:
    return "" if value is None else repr(value)


def _optional_float(value: Any) -> float | None:
    return None if value in (None, "") else float(value)


def _error(raw: str | None) -> ErrorInfo | None:
    if not raw:
        return None
    kind, message = json.loads(raw)
    return ErrorInfo(kind, message)


# -- meta ------------------------------------------------------------------------------------------


def new_run_meta(run: Run) -> dict[str, str]:
    """The meta hash of a run just created (version 0)."""
    return {
        STATUS: run.status.value,
        "definition_id": run.definition_id,
        "workflow": run.plan.name,
        "created_at": repr(run.created_at),
        "input": encode_compact(run.input),
        **progress_fields(run, 0),
        **start_request_fields(run.start_request),
        **({} if run.started_by is None else {"started_by": run.started_by}),
    }


def start_request_fields(start: IdempotentStart | None) -> dict[str, str]:
    return {} if start is None else {"idempotency_key": start.key, "request_fingerprint": start.fingerprint}


def _start_request(meta: Mapping[str, str]) -> IdempotentStart | None:
    key = meta.get("idempotency_key")
    return None if key is None else IdempotentStart(key, meta["request_fingerprint"])


def progress_fields(run: Run, version: int) -> dict[str, str]:
    """The meta fields a transition may change, with the version the commit makes."""
    return {
        STATUS: run.status.value,
        "started_at": _time(run.started_at),
        "finished_at": _time(run.finished_at),
        "unfinished": str(run.unfinished),
        "in_flight": str(run.in_flight),
        "failed": str(run.failed_nodes),
        "error": "" if run.error is None else encode_compact([run.error.type, run.error.message]),
        "cancelled_by": run.cancelled_by or "",
        "redriven_at": _time(run.redriven_at),
        VERSION: str(version),
    }


def run_output_field(run: Run) -> dict[str, str]:
    """The meta field of a run's rendered output (written once, when the run completes with one)."""
    return {"output": encode_compact(run.output)}


@dataclass(frozen=True, slots=True)
class StoredRun:
    """A run as read back, with the version of its state."""

    run: Run
    version: int


def decode_run(
    run_id: str,
    meta: Mapping[str, str],
    nodes: Mapping[str, str],
    outputs: Mapping[str, str],
    plan: WorkflowPlan,
    *,
    with_input: bool = True,
) -> StoredRun:
    """``with_input=False`` leaves the input out (``{}``): deciding transitions never reads it, and an
    orchestrator keeps many runs."""
    run = Run(
        run_id=run_id,
        definition_id=meta["definition_id"],
        plan=plan,
        input=json.loads(meta["input"]) if with_input else {},
        created_at=float(meta["created_at"]),
        nodes=_decode_nodes(nodes, plan),
        status=RunStatus(meta[STATUS]),
        started_at=_optional_float(meta.get("started_at")),
        finished_at=_optional_float(meta.get("finished_at")),
        outputs={node_id: decode_output(raw) for node_id, raw in outputs.items()},
        unfinished=int(meta["unfinished"]),
        in_flight=int(meta["in_flight"]),
        failed_nodes=int(meta["failed"]),
        error=_error(meta.get("error")),
        output=json.loads(raw_output) if (raw_output := meta.get("output")) else None,
        start_request=_start_request(meta),
        started_by=meta.get("started_by"),
        cancelled_by=meta.get("cancelled_by") or None,
        redriven_at=_optional_float(meta.get("redriven_at")),
    )
    return StoredRun(run, int(meta.get(VERSION) or 0))


def decode_revision(fields: list[str | None]) -> str | None:
    """The run's revision (``domain.ports.run_revision``) from ``REVISION_FIELDS``; None when the
    run is not stored (or has expired)."""
    version, created_at = fields
    if created_at is None:
        return None
    return run_revision(int(version or 0), float(created_at))


def stored_revision(stored: StoredRun) -> str:
    """The revision of a run as read back (``decode_run``)."""
    return run_revision(stored.version, stored.run.created_at)


def decode_summary(run_id: str, fields: list[str | None]) -> RunSummary | None:
    """A summary from the meta fields ``SUMMARY_FIELDS``; None when the run has expired."""
    status, definition_id, workflow, created_at, started_at, finished_at = fields
    if status is None or definition_id is None or created_at is None:
        return None
    return RunSummary(
        run_id,
        definition_id,
        workflow or "",
        RunStatus(status),
        float(created_at),
        _optional_float(started_at),
        _optional_float(finished_at),
    )


# -- nodes -----------------------------------------------------------------------------------------


def _decode_nodes(fields: Mapping[str, str], plan: WorkflowPlan) -> list[NodeRun]:
    # One parse of all the stored nodes as one JSON array: a status read decodes every node of the
    # run, and a call of ``json.loads`` per node costs as much again as the parse itself.
    stored = [raw for spec in plan.nodes if (raw := fields.get(spec.id)) is not None]
    states = iter(json.loads(f"[{','.join(stored)}]") if stored else ())
    nodes = [_node_of(next(states)) if spec.id in fields else NodeRun.initial(spec) for spec in plan.nodes]
    if plan.map_sources:  # a map's items in flight, and its marked items, are stored beside the nodes
        for name, raw in fields.items():
            node_id, item = split_key(name)
            if item is None:
                node_id, mark, index_text = name.partition(MARK_SEPARATOR)
                if not mark or (index := plan.index.get(node_id)) is None or nodes[index].items is None:
                    continue
                _add_mark(nodes[index], int(index_text), raw)
            elif (index := plan.index.get(node_id)) is not None and (items := nodes[index].items) is not None:
                items.live[item] = decode_item(raw)
        for node in nodes:
            if node.items is not None and node.items.redo:
                node.items.redo.sort(reverse=True)
    return nodes


MARK_SEPARATOR = "!"


def mark_field(node_id: str, item: int) -> str:
    """The nodes hash's field marking a map's item (``Outcome.items_marked``)."""
    return f"{node_id}{MARK_SEPARATOR}{item}"


def _add_mark(node: NodeRun, item: int, mark: str) -> None:
    assert node.items is not None
    if mark == FAILED_MARK:
        node.items.failed_items.add(item)
    else:
        node.items.redo.append(item)


def encode_node(node: NodeRun) -> str:
    """Short keys, empty fields left out. Written by hand, not by ``json.dumps`` of a dict: a commit
    encodes every node it changed, the costliest step of a transition. Times are finite floats,
    whose ``repr`` is a JSON number; strings go through the JSON encoder."""
    parts = ['{"s":"', node.status.value, '","a":', str(node.attempt), ',"w":', str(node.waiting_on)]
    _add_attempt_parts(parts, node)
    if node.failed_parents:
        parts += (',"pf":', str(node.failed_parents))
    if node.skipped_parents:
        parts += (',"ps":', str(node.skipped_parents))
    if node.attempts_before:
        parts += (',"ab":', str(node.attempts_before))
    if node.heartbeat_at is not None:
        parts += (',"hb":', repr(node.heartbeat_at))
    if node.progress is not None:
        parts += (',"pg":', encode_compact(node.progress))
    if node.items is not None:
        items = node.items
        parts += (',"m":[', str(items.total), ",", str(items.next_item), ",", str(items.succeeded))
        parts += (",", str(items.failed), ",", str(items.cancelled), ",", str(items.skipped), "]")
    if node.failed_attempts:
        failed = [
            [f.attempt, f.started_at, f.finished_at, f.error.type, f.error.message]
            for f in node.failed_attempts
        ]
        parts += (',"fa":', encode_compact(failed))
    parts.append("}")
    return "".join(parts)


_NODE_STATUSES = {status.value: status for status in NodeStatus}
"""``NodeStatus`` by value: a dict lookup costs less than the enum's call, once per node read."""


def _node_of(state: dict[str, Any]) -> NodeRun:
    """A node from its parsed ``encode_node`` JSON, whose numbers already have their types (counts
    are written as ints, times as float ``repr``)."""
    get = state.get
    error = get("e")
    failed = get("fa")
    items = get("m")
    return NodeRun(
        waiting_on=state["w"],
        status=_NODE_STATUSES[state["s"]],
        attempt=state["a"],
        queued_at=get("q"),
        started_at=get("st"),
        finished_at=get("f"),
        worker_id=get("wk"),
        error=None if error is None else ErrorInfo(error[0], error[1]),
        retry_at=get("r"),
        failed_attempts=None if not failed else [_failed_attempt(*entry) for entry in failed],
        failed_parents=get("pf", 0),
        skipped_parents=get("ps", 0),
        heartbeat_at=get("hb"),
        progress=get("pg"),
        attempts_before=get("ab", 0),
        items=None if items is None else MapState(items[0], items[1], {}, *items[2:]),
    )


def _failed_attempt(
    attempt: int, started_at: float | None, finished_at: float, kind: str, message: str
) -> FailedAttempt:
    return FailedAttempt(attempt, started_at, finished_at, ErrorInfo(kind, message))


def _add_attempt_parts(parts: list[str], state: NodeRun | ItemRun) -> None:
    """The fields a node and a map's item share: times, worker, error."""
    if state.queued_at is not None:
        parts += (',"q":', repr(state.queued_at))
    if state.started_at is not None:
        parts += (',"st":', repr(state.started_at))
    if state.finished_at is not None:
        parts += (',"f":', repr(state.finished_at))
    if state.worker_id is not None:
        parts += (',"wk":', encode_compact(state.worker_id))
    if state.error is not None:
        parts += (',"e":', encode_compact([state.error.type, state.error.message]))
    if state.retry_at is not None:
        parts += (',"r":', repr(state.retry_at))


def _attempt_fields(state: Mapping[str, Any]) -> dict[str, Any]:
    """``_add_attempt_parts`` read back: keyword arguments of ``NodeRun`` and ``ItemRun``."""
    error = state.get("e")
    return {
        "queued_at": _optional_float(state.get("q")),
        "started_at": _optional_float(state.get("st")),
        "finished_at": _optional_float(state.get("f")),
        "worker_id": state.get("wk"),
        "error": None if error is None else ErrorInfo(error[0], error[1]),
        "retry_at": _optional_float(state.get("r")),
    }


def encode_item(item: ItemRun) -> str:
    """A map item's record, the same short keys as a node's."""
    parts = ['{"s":"', item.status.value, '","a":', str(item.attempt)]
    if item.attempts_before:
        parts += (',"ab":', str(item.attempts_before))
    _add_attempt_parts(parts, item)
    parts.append("}")
    return "".join(parts)


def decode_item(raw: str) -> ItemRun:
    state = json.loads(raw)
    return ItemRun(
        attempt=int(state["a"]),
        status=NodeStatus(state["s"]),
        attempts_before=int(state.get("ab", 0)),
        **_attempt_fields(state),
    )


# -- outputs and history ---------------------------------------------------------------------------


_MAP_OUTPUT = "@map:"
"""Starts the stored output of a map node: no JSON text starts with ``@``."""


def encode_output(value: Any) -> str:
    if type(value) is MapOutput:
        return f"{_MAP_OUTPUT}{value.count}"
    return encode_compact(value)


def decode_output(raw: str) -> Any:
    if raw.startswith(_MAP_OUTPUT):
        return MapOutput(int(raw.removeprefix(_MAP_OUTPUT)))
    return json.loads(raw)


def encode_entry(entry: HistoryEntry) -> str:
    """``HistoryEntry.to_json`` as text, written by hand like ``encode_node`` (one per event). Node ids
    need no escaping: validation allows only letters, digits, ``_`` and ``-`` in them."""
    parts = ['{"kind":"', entry.kind.value, '","at":', repr(entry.at)]
    if entry.node_id is not None:
        attempt = "null" if entry.attempt is None else str(entry.attempt)
        parts += (',"node_id":"', entry.node_id, '","attempt":', attempt)
    if entry.worker_id:
        parts += (',"worker_id":', encode_compact(entry.worker_id))
    if entry.error is not None:
        error = {"type": entry.error.type, "message": entry.error.message}
        parts += (',"error":', encode_compact(error))
    if entry.retry_at is not None:
        parts += (',"retry_at":', repr(entry.retry_at))
    if entry.dispatched:
        parts += (',"dispatched":["', '","'.join(entry.dispatched), '"]')
    if entry.skipped:
        parts += (',"skipped":["', '","'.join(entry.skipped), '"]')
    if entry.run_status is not None:
        parts += (',"run_status":"', entry.run_status.value, '"')
    if entry.by is not None:
        parts += (',"by":', encode_compact(entry.by))
    if entry.redriven:
        parts += (',"redriven":["', '","'.join(entry.redriven), '"]')
    if entry.progress is not None:
        parts += (',"progress":', encode_compact(entry.progress))
    parts.append("}")
    return "".join(parts)


def decode_entry(raw: str) -> HistoryEntry:
    return HistoryEntry.from_json(json.loads(raw))
