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
from bench.metrics_scrapes import scraping
from bench.proc_sampling import cpu_seconds, load_average, own_peak_mib, reset_peak, vm_hwm_mib
from bench.redis_nodes import counters, reset_stats, summed_commandstats
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
    client: Any  # redis.asyncio.Redis (or RedisCluster), shared with the container
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


def _redis_role(role: str) -> bool:
    return role == "redis" or role.startswith("redis@")


async def measured(bench: Bench, name: str, body: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run one workload with peaks restarted, CPU time and Redis command statistics around it.

    Redis's figures are read from each node on a client of its own (a cluster's masters one by one)
    and summed; ``redis_nodes`` keeps them per node."""
    pids = {**bench.cluster.pids(), "bench": os.getpid()}
    nodes = bench.cluster.redis_nodes()
    for pid in pids.values():
        reset_peak(pid)
    reset_stats(nodes)
    before = counters(nodes)
    cpu_before = {role: cpu_seconds(pid) for role, pid in pids.items()}
    try:
        with scraping(bench.cluster.metrics_ports, bench.cluster.folder) as scrapes:
            result = await body
    finally:
        load = load_average()
    if scrapes:
        result["metrics_scrapes"] = scrapes
    after = counters(nodes)
    cpu: dict[str, float | None] = {}
    for role, pid in pids.items():
        end, start = cpu_seconds(pid), cpu_before[role]
        cpu[role] = None if end is None or start is None else end - start
    peaks: dict[str, float | None] = {role: vm_hwm_mib(pid) for role, pid in bench.cluster.pids().items()}
    peaks["bench"] = own_peak_mib()
    total_nodes = result["nodes"] * result["runs"]
    result["e2e_ms_per_node"] = result["seconds"] / total_nodes * 1000
    result["cpu_seconds"] = cpu
    engine_roles = [role for role in pids if not _redis_role(role) and role != "bench"]
    engine_cpu: list[float | None] = [cpu.get(role) for role in engine_roles]
    if all(value is not None for value in engine_cpu):
        # The engine's own processes (orchestrators and workers), then Redis apart: moving work
        # between them (a script's rules into the domain) shows in both.
        result["engine_cpu_ms_per_node"] = sum(engine_cpu) / total_nodes * 1000  # type: ignore[arg-type]
    redis_cpu: list[float | None] = [cpu.get(node.role) for node in nodes]
    if all(value is not None for value in redis_cpu):
        result["redis_cpu_ms_per_node"] = sum(redis_cpu) / total_nodes * 1000  # type: ignore[arg-type]
    # Requests each node read from its sockets (~ round trips, the benchmark's own polling included).
    per_node: list[dict[str, Any]] = []
    for node, start_counts, end_counts in zip(nodes, before, after, strict=True):
        per_node.append(
            {
                "role": node.role,
                "reads": end_counts.reads - start_counts.reads,
                "commands": end_counts.commands - start_counts.commands,
                "cpu_seconds": cpu.get(node.role),
                "commandstats": {
                    command: calls
                    for command, (calls, _) in sorted(end_counts.commandstats.items())
                    if command not in ("info", "config|resetstat")
                },
            }
        )
    result["redis_nodes"] = per_node
    result["redis_reads_per_node"] = sum(row["reads"] for row in per_node) / total_nodes
    result["redis_commands_per_node"] = sum(row["commands"] for row in per_node) / total_nodes
    result["peak_mib"] = peaks
    result["redis_commands"] = summed_commandstats(after)[:8]
    result["load_average"] = load
    return result


async def run_all(
    cluster: Cluster, args: argparse.Namespace, selected: list[str], say: Callable[[str], None]
) -> dict[str, Any]:
    container = Container()
    container.backend.override("redis")
    settings = Settings(
        redis_url=cluster.url,
        redis_cluster=cluster.clustered,
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
