"""The distributed benchmark's reads of run state, straight from Redis by raw key and field name.

Kept together in this one module because they depend on how the Redis adapters encode a run (the
meta hash's fields, the node-state hash and its short field names ``q``, ``st``, ``f``): when that
encoding changes, this is what changes with it. The benchmark reads Redis directly instead of
through ``WorkflowService`` so that polling costs one pipelined round trip however many runs wait.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from bench.workloads import WorkloadFailed
from services.container import Container

FINAL_STATUSES = ("COMPLETED", "FAILED", "CANCELLED")


async def wait_finished(
    container: Container, client: Any, run_ids: list[str], *, limit_seconds: float, poll: float
) -> dict[str, dict[str, str]]:
    """Poll the runs' meta hashes until every status is final; bounded by ``limit_seconds``.

    Returns, per run, its ``status``, ``finished_at`` and ``created_at`` as stored (strings).
    """
    keys = container.key_space()
    pending = {run_id: keys.run(run_id).meta for run_id in run_ids}
    finished: dict[str, dict[str, str]] = {}
    began = time.monotonic()
    deadline = began + limit_seconds
    while pending:
        pipe = client.pipeline(transaction=False)
        for meta in pending.values():
            pipe.hmget(meta, "status", "finished_at", "created_at", "unfinished")
        replies = await pipe.execute()
        for run_id, (status, finished_at, created_at, unfinished) in zip(list(pending), replies, strict=True):
            if status in FINAL_STATUSES:
                finished[run_id] = {"status": status, "finished_at": finished_at, "created_at": created_at}
                del pending[run_id]
            elif time.monotonic() > deadline:
                raise WorkloadFailed(
                    f"{len(pending)} run(s) not finished after {limit_seconds:.0f} s "
                    f"(e.g. {run_id}: status {status}, {unfinished} node(s) unfinished)"
                )
        if pending:
            # Timing comes from finished_at, not from when the poll sees it: back off on long runs so
            # that polling does not steal CPU from the engine (2 % of the time waited so far).
            await asyncio.sleep(max(poll, min(0.1, (time.monotonic() - began) * 0.02)))
    return finished


async def node_states(
    container: Container, client: Any, run_ids: list[str]
) -> dict[str, dict[str, dict[str, Any]]]:
    """run id -> node id -> the node's state as stored (decoded JSON), 100 runs per round trip."""
    keys = container.key_space()
    states: dict[str, dict[str, dict[str, Any]]] = {}
    for start in range(0, len(run_ids), 100):
        batch = run_ids[start : start + 100]
        pipe = client.pipeline(transaction=False)
        for run_id in batch:
            pipe.hgetall(keys.run(run_id).nodes)
        for run_id, raw in zip(batch, await pipe.execute(), strict=True):
            states[run_id] = {node_id: json.loads(value) for node_id, value in raw.items()}
    return states


def hop_latencies(
    definition: dict[str, Any], states: dict[str, dict[str, Any]], created_at: float
) -> dict[str, list[float]]:
    """Per node with parents: queued (``q``), started (``st``) and finished (``f``) minus the parents'
    latest finish; per root: started minus the run's creation."""
    hops: dict[str, list[float]] = {"queue": [], "dispatch": [], "complete": [], "run_start": []}
    for node in definition["dag"]["nodes"]:
        state = states[node["id"]]
        dependencies = node["dependencies"]
        if not dependencies:
            if state.get("st"):
                hops["run_start"].append(float(state["st"]) - created_at)
            continue
        ready = max(float(states[parent]["f"]) for parent in dependencies)
        hops["queue"].append(float(state["q"]) - ready)
        if state.get("st"):
            hops["dispatch"].append(float(state["st"]) - ready)
        hops["complete"].append(float(state["f"]) - ready)
    return hops
