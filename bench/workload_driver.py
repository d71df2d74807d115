"""Driving the distributed benchmark's workloads from the benchmark process: register each definition
and start its runs through a ``Container`` on the redis backend, wait until they are final, and
measure around each workload (peak RSS restarted, CPU seconds, Redis's command statistics).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from dependency_injector import providers

import bench.bench_handlers  # noqa: F401  (registers "noop" in this process too)
from bench.dags import edge_count
from bench.engine_cluster import MAX_NODES, Cluster
from bench.proc_sampling import cpu_seconds, load_average, own_peak_mib, reset_peak, vm_hwm_mib
from bench.run_state_reads import hop_latencies, inspector, node_states, wait_finished
from bench.stats import distribution_ms
from bench.workload_report import progress_line
from bench.workloads import WorkloadFailed, work_units, workload_definitions
from domain.statuses import RunStatus
from services.container import Container, close_backend, open_backend
from services.settings import Settings
from tests.definitions import diamond

START_PARALLELISM = 64  # W3: start() calls in flight at once


@dataclass
class Bench:
    cluster: Cluster
    container: Container
    client: Any  # redis.asyncio.Redis, shared with the container
    timeout: float
    say: Callable[[str], None]


async def run_workload(
    bench: Bench, definition: dict[str, Any], *, runs: int = 1, poll: float = 0.005
) -> dict[str, Any]:
    service = bench.container.workflows()
    nodes = work_units(definition)
    started = time.perf_counter()
    stored = await service.register(definition)
    register_seconds = time.perf_counter() - started

    limit = asyncio.Semaphore(START_PARALLELISM)

    async def start_one() -> str:
        async with limit:
            return (await service.start(stored.definition_id, {})).run_id

    t0 = time.time()
    started = time.perf_counter()
    if runs == 1:
        run_ids = [await start_one()]
    else:
        run_ids = list(await asyncio.gather(*(start_one() for _ in range(runs))))
    start_seconds = time.perf_counter() - started
    reads = inspector(bench.container, bench.client)
    finished = await wait_finished(reads, run_ids, limit_seconds=bench.timeout, poll=poll)
    observed_seconds = time.perf_counter() - started

    failed = {run_id: s.status for run_id, s in finished.items() if s.status is not RunStatus.COMPLETED}
    if failed:
        run_id, status = next(iter(failed.items()))
        raise WorkloadFailed(f"{len(failed)} run(s) did not complete (e.g. {run_id}: {status})")
    seconds = max(s.finished_at or t0 for s in finished.values()) - t0

    states = await node_states(reads, run_ids)
    hops: dict[str, list[float]] = {"queue": [], "dispatch": [], "complete": [], "run_start": []}
    for run_id in run_ids:
        created_at = finished[run_id].created_at
        for name, values in hop_latencies(definition, states[run_id], created_at).items():
            hops[name].extend(values)

    result: dict[str, Any] = {
        "nodes": nodes,
        "edges": edge_count(definition),
        "runs": runs,
        "register_seconds": register_seconds,
        "start_seconds": start_seconds,
        "seconds": seconds,
        "observed_seconds": observed_seconds,
        "nodes_per_second": nodes * runs / seconds,
        "runs_per_second": runs / seconds,
        "hop_dispatch_ms": distribution_ms(hops["dispatch"]),
        "hop_queue_ms": distribution_ms(hops["queue"]),
        "hop_complete_ms": distribution_ms(hops["complete"]),
        "run_start_ms": distribution_ms(hops["run_start"]),
    }
    if runs > 1:
        result["starts_per_second"] = runs / start_seconds
    return result


async def _commandstats(client: Any) -> list[dict[str, Any]]:
    stats = await client.info("commandstats")
    rows = [
        {
            "command": name.removeprefix("cmdstat_"),
            "calls": int(values["calls"]),
            "usec": int(values["usec"]),
            "usec_per_call": float(values["usec_per_call"]),
        }
        for name, values in stats.items()
    ]
    rows.sort(key=lambda row: row["usec"], reverse=True)
    return rows


async def measured(bench: Bench, name: str, body: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run one workload with peaks restarted, CPU time and Redis command statistics around it."""
    pids = {**bench.cluster.pids(), "bench": os.getpid()}
    for pid in pids.values():
        reset_peak(pid)
    await bench.client.config_resetstat()
    stats_before = await bench.client.info("stats")
    cpu_before = {role: cpu_seconds(pid) for role, pid in pids.items()}
    try:
        result = await body
    finally:
        load = load_average()
    stats_after = await bench.client.info("stats")
    cpu = {}
    for role, pid in pids.items():
        after, before = cpu_seconds(pid), cpu_before[role]
        cpu[role] = None if after is None or before is None else after - before
    peaks: dict[str, float | None] = {role: vm_hwm_mib(pid) for role, pid in bench.cluster.pids().items()}
    peaks["bench"] = own_peak_mib()
    total_nodes = result["nodes"] * result["runs"]
    result["e2e_ms_per_node"] = result["seconds"] / total_nodes * 1000
    result["cpu_seconds"] = cpu
    engine_cpu = [cpu.get(role) for role in pids if role not in ("redis", "bench")]
    if all(value is not None for value in engine_cpu):
        # The engine's own processes (orchestrators and workers), then Redis apart: moving work
        # between them (a script's rules into the domain) shows in both.
        result["engine_cpu_ms_per_node"] = sum(engine_cpu) / total_nodes * 1000  # type: ignore[arg-type]
    if cpu.get("redis") is not None:
        result["redis_cpu_ms_per_node"] = cpu["redis"] / total_nodes * 1000  # type: ignore[operator]
    # Requests Redis read from its sockets (~ round trips, the benchmark's own polling included).
    for key, field in (
        ("redis_reads_per_node", "total_reads_processed"),
        ("redis_commands_per_node", "total_commands_processed"),
    ):
        if field in stats_after and field in stats_before:
            result[key] = (int(stats_after[field]) - int(stats_before[field])) / total_nodes
    result["peak_mib"] = peaks
    result["redis_commands"] = (await _commandstats(bench.client))[:8]
    result["load_average"] = load
    return result


async def run_all(
    cluster: Cluster, args: argparse.Namespace, selected: list[str], say: Callable[[str], None]
) -> dict[str, Any]:
    container = Container()
    container.backend.override("redis")
    settings = Settings(
        redis_url=cluster.url,
        redis_key_prefix=cluster.prefix,
        redis_shards=args.shards,
        max_nodes=MAX_NODES,
        max_edges=MAX_NODES * 10,
    )
    container.settings.override(providers.Object(settings))
    await open_backend(container)
    bench = Bench(cluster, container, container.redis_client(), args.timeout, say)
    results: dict[str, Any] = {}
    try:
        await run_workload(bench, diamond())  # warm-up: scripts loaded, connections open, code paths hot
        say("warm-up run done")
        for name, (description, make, runs) in workload_definitions(args.seed).items():
            if name not in selected:
                continue
            definition = make()
            poll = 0.05 if runs > 1 else 0.005
            try:
                row = await measured(bench, name, run_workload(bench, definition, runs=runs, poll=poll))
            except WorkloadFailed as error:
                results[name] = {"description": description, "error": str(error)}
                say(f"{name} FAILED TO COMPLETE: {error}")
                continue
            row["description"] = description
            results[name] = row
            say(progress_line(name, row))
    finally:
        await close_backend(container)
    return results
