"""The distributed benchmark's reads of run state, through the Redis adapters' typed readers.

The benchmark reads Redis directly instead of through ``WorkflowService`` so that polling costs one
pipelined round trip however many runs wait; what it reads is decoded by ``adapters.redis.codec``
(through ``adapters.redis.inspection``), never by raw field names here.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis

from adapters.redis.inspection import AsyncRedisInspector, RedisInspector
from bench.workloads import WorkloadFailed
from domain.node_state import NodeRun
from domain.ports import RunSummary
from services.container import Container


def inspector(container: Container, client: Any) -> AsyncRedisInspector:
    """Reads on the benchmark's asyncio client; definitions (once each) on a synchronous one."""
    keys = container.key_space()
    plans = RedisInspector(
        redis.Redis.from_url(container.settings().redis_location(), decode_responses=True), keys
    )
    return AsyncRedisInspector(client, keys, plans)


async def wait_finished(
    reads: AsyncRedisInspector, run_ids: list[str], *, limit_seconds: float, poll: float
) -> dict[str, RunSummary]:
    """Poll the runs' summaries until every status is final; bounded by ``limit_seconds``."""
    pending = list(run_ids)
    finished: dict[str, RunSummary] = {}
    began = time.monotonic()
    deadline = began + limit_seconds
    while pending:
        summaries = await reads.summaries(pending)
        for run_id, summary in summaries.items():
            if summary is not None and summary.status.is_final:
                finished[run_id] = summary
            elif time.monotonic() > deadline:
                status = None if summary is None else summary.status
                raise WorkloadFailed(
                    f"{len(pending) - len(finished)} run(s) not finished after {limit_seconds:.0f} s "
                    f"(e.g. {run_id}: status {status})"
                )
        pending = [run_id for run_id in pending if run_id not in finished]
        if pending:
            # Timing comes from finished_at, not from when the poll sees it: back off on long runs so
            # that polling does not steal CPU from the engine (2 % of the time waited so far).
            await asyncio.sleep(max(poll, min(0.1, (time.monotonic() - began) * 0.02)))
    return finished


async def node_states(reads: AsyncRedisInspector, run_ids: list[str]) -> dict[str, dict[str, NodeRun]]:
    """run id -> node id -> the node's state as stored, 100 runs per round trip."""
    states: dict[str, dict[str, NodeRun]] = {}
    for start in range(0, len(run_ids), 100):
        batch = run_ids[start : start + 100]
        for run_id, run in zip(batch, await reads.runs(batch), strict=True):
            assert run is not None, f"run {run_id} is gone"
            states[run_id] = {spec.id: state for spec, state in run.node_states()}
    return states


def hop_latencies(
    definition: dict[str, Any], states: dict[str, NodeRun], created_at: float
) -> dict[str, list[float]]:
    """Per node with parents: queued, started and finished minus the parents' latest finish; per root:
    started minus the run's creation. Nodes that never ran (skipped by a condition or a trigger rule,
    W5) have no hop."""
    hops: dict[str, list[float]] = {"queue": [], "dispatch": [], "complete": [], "run_start": []}
    for node in definition["dag"]["nodes"]:
        state = states[node["id"]]
        dependencies = node["dependencies"]
        if not dependencies:
            if state.started_at is not None:
                hops["run_start"].append(state.started_at - created_at)
            continue
        if state.queued_at is None:
            continue  # never dispatched: skipped
        ready = max(_time(states[parent].finished_at) for parent in dependencies)
        hops["queue"].append(_time(state.queued_at) - ready)
        if state.started_at is not None:
            hops["dispatch"].append(state.started_at - ready)
        hops["complete"].append(_time(state.finished_at) - ready)
    return hops


def _time(value: float | None) -> float:
    assert value is not None, "a node of a finished run without its time"
    return value
