"""Throughput of the embedded engine on large no-op DAGs.

    uv run python -m bench.embedded [--sizes 1000,10000,100000] [--workers N] [--repeat R]

For every size and repeat the parent spawns a fresh ``python -m bench.embedded --one N`` so that the
peak RSS (``ru_maxrss``) belongs to that one run, and collects the JSON line it prints. Each child:

1. generates a layered DAG (``bench.dags.layered_dag``) of ``noop`` nodes;
2. builds a ``Container`` whose ``registry`` is a fresh ``HandlerRegistry`` holding only an async
   no-op handler and whose ``settings`` allow the size (``max_nodes``, ``max_edges``);
3. times ``WorkflowService.register`` (validation + compilation to a plan) separately;
4. warms up on a small DAG in a separate container (unless ``--no-warmup``);
5. times only the execution: from ``WorkflowService.start()`` until ``EmbeddedEngine.wait_for``
   returns, with the engine's loops already started and idle;
6. checks that the run COMPLETED with every node completed and one output per node.

The parent reports the median of the repeats per size and compares against the targets. It exits 0
whether targets pass or fail; only a crash (a child failing, a run not completing) exits non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dependency_injector import providers

from bench.dags import DEFAULT_WIDTH, edge_count, layered_dag
from domain.statuses import RunStatus
from services.container import Container
from services.engine import EmbeddedEngine
from services.settings import Settings
from services.worker.registry import HandlerContext, HandlerRegistry

DEFAULT_SIZES = (1_000, 10_000, 100_000)
THROUGHPUT_SIZE = 10_000
THROUGHPUT_TARGET = 20_000.0  # nodes/s at THROUGHPUT_SIZE
SCALING_TARGET = 1.3  # time per node at the largest size / at the smallest
WARMUP_NODES = 500
PROJECT_ROOT = Path(__file__).resolve().parent.parent


async def noop(ctx: HandlerContext) -> dict[str, Any]:
    return {}


def bench_registry() -> HandlerRegistry:
    registry = HandlerRegistry()
    registry.register("noop")(noop)
    return registry


def bench_container(nodes: int, edges: int, concurrency: int | None) -> Container:
    overrides: dict[str, Any] = {
        "max_nodes": max(nodes, Settings.model_fields["max_nodes"].default),
        "max_edges": max(edges, Settings.model_fields["max_edges"].default),
    }
    if concurrency is not None:
        overrides["worker_concurrency"] = concurrency
    container = Container()
    container.settings.override(providers.Object(Settings(**overrides)))
    container.registry.override(providers.Object(bench_registry()))
    return container


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


async def _execute(
    definition: dict[str, Any],
    *,
    workers: int,
    concurrency: int | None,
    gc_mode: str,
    timeout: float,
) -> dict[str, Any]:
    nodes = len(definition["dag"]["nodes"])
    edges = edge_count(definition)
    container = bench_container(nodes, edges, concurrency)
    service = container.workflows()

    started = time.perf_counter()
    stored = await service.register(definition)
    validate_seconds = time.perf_counter() - started

    async with EmbeddedEngine(container, workers) as engine:
        await asyncio.sleep(0)  # let the orchestrator and workers reach their idle receive
        if gc_mode == "freeze":
            gc.collect()
            gc.freeze()
        elif gc_mode == "off":
            gc.collect()
            gc.disable()
        gc_before = sum(stat["collections"] for stat in gc.get_stats())
        try:
            started = time.perf_counter()
            run = await service.start(stored.definition_id, {})
            async with asyncio.timeout(timeout):
                status = await engine.wait_for(run.run_id)
            execute_seconds = time.perf_counter() - started
        finally:
            gc_collections = sum(stat["collections"] for stat in gc.get_stats()) - gc_before
            if gc_mode == "freeze":
                gc.unfreeze()
            elif gc_mode == "off":
                gc.enable()

    finished = await service.get_run(run.run_id)
    completed = sum(1 for _, node in finished.node_states() if node.status.name == "COMPLETED")
    if status is not RunStatus.COMPLETED or completed != nodes or len(finished.outputs) != nodes:
        raise RuntimeError(
            f"run ended {status} with {completed}/{nodes} nodes completed and "
            f"{len(finished.outputs)} outputs"
        )
    return {
        "nodes": nodes,
        "edges": edges,
        "validate_seconds": validate_seconds,
        "execute_seconds": execute_seconds,
        "gc_collections": gc_collections,
        "status": status.name,
    }


async def measure_one(
    nodes: int,
    *,
    seed: int,
    width: int | None,
    workers: int,
    concurrency: int | None,
    gc_mode: str,
    warmup: bool,
    timeout: float,
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "workers": workers,
        "concurrency": concurrency,
        "gc_mode": gc_mode,
        "timeout": timeout,
    }
    if warmup:
        await _execute(layered_dag(WARMUP_NODES, seed + 1, width), **options)
    started = time.perf_counter()
    definition = layered_dag(nodes, seed, width)
    generate_seconds = time.perf_counter() - started
    rss_before = peak_rss_mib()
    result = await _execute(definition, **options)
    result["generate_seconds"] = generate_seconds
    result["peak_rss_before_mib"] = rss_before
    result["peak_rss_mib"] = peak_rss_mib()
    return result


def _child(args: argparse.Namespace, nodes: int) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "bench.embedded",
        "--one",
        str(nodes),
        "--workers",
        str(args.workers),
        "--seed",
        str(args.seed),
        "--gc",
        args.gc,
        "--timeout",
        str(args.timeout),
    ]
    if args.width is not None:
        command += ["--width", str(args.width)]
    if args.concurrency is not None:
        command += ["--concurrency", str(args.concurrency)]
    if not args.warmup:
        command.append("--no-warmup")
    completed = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        sys.stderr.write(completed.stdout + completed.stderr)
        raise SystemExit(f"benchmark child for {nodes} nodes failed (exit {completed.returncode})")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _summarise(nodes: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = [run["execute_seconds"] for run in runs]
    median = statistics.median(seconds)
    return {
        "nodes": nodes,
        "edges": runs[0]["edges"],
        "validate_seconds": statistics.median(run["validate_seconds"] for run in runs),
        "seconds": median,
        "min_seconds": min(seconds),
        "max_seconds": max(seconds),
        "nodes_per_second": nodes / median,
        "us_per_node": median / nodes * 1e6,
        "peak_rss_mib": statistics.median(run["peak_rss_mib"] for run in runs),
        "peak_rss_before_mib": statistics.median(run["peak_rss_before_mib"] for run in runs),
        "gc_collections": statistics.median(run["gc_collections"] for run in runs),
    }


def _print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'nodes':>8} {'edges':>8} {'validate s':>10} {'exec s':>8} {'(min-max)':>15} "
        f"{'nodes/s':>9} {'us/node':>8} {'peak RSS MiB':>12} {'(setup)':>8} {'gc runs':>7}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        spread = f"{row['min_seconds']:.3f}-{row['max_seconds']:.3f}"
        print(
            f"{row['nodes']:>8} {row['edges']:>8} {row['validate_seconds']:>10.3f} {row['seconds']:>8.3f} "
            f"{spread:>15} {row['nodes_per_second']:>9,.0f} {row['us_per_node']:>8.1f} "
            f"{row['peak_rss_mib']:>12.1f} {row['peak_rss_before_mib']:>8.1f} {row['gc_collections']:>7.0f}"
        )


def _print_targets(rows: list[dict[str, Any]]) -> None:
    by_size = {row["nodes"]: row for row in rows}
    throughput = by_size.get(THROUGHPUT_SIZE)
    if throughput is None:
        print(f"throughput at {THROUGHPUT_SIZE:,} nodes: n/a (size not measured)")
    else:
        verdict = "PASS" if throughput["nodes_per_second"] >= THROUGHPUT_TARGET else "FAIL"
        print(
            f"{verdict}  throughput at {THROUGHPUT_SIZE:,} nodes: {throughput['nodes_per_second']:,.0f} "
            f"nodes/s (target >= {THROUGHPUT_TARGET:,.0f})"
        )
    smallest, largest = min(by_size), max(by_size)
    if smallest == largest:
        print("scaling: n/a (needs two sizes)")
    else:
        ratio = by_size[largest]["us_per_node"] / by_size[smallest]["us_per_node"]
        verdict = "PASS" if ratio <= SCALING_TARGET else "FAIL"
        print(
            f"{verdict}  scaling: time per node at {largest:,} / at {smallest:,} = {ratio:.2f} "
            f"(target <= {SCALING_TARGET})"
        )


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.embedded", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(str(size) for size in DEFAULT_SIZES))
    parser.add_argument("--workers", type=int, default=1, help="worker loops in the embedded engine")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="WORKER_CONCURRENCY (default: the settings default)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; the median is reported")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--width", type=int, default=None, help=f"nodes per layer (default {DEFAULT_WIDTH})")
    parser.add_argument(
        "--gc",
        choices=("default", "freeze", "off"),
        default="default",
        help="garbage collector during the timed part: as is, gc.freeze() after setup, or disabled",
    )
    parser.add_argument("--no-warmup", dest="warmup", action="store_false", help="skip the warm-up run")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a run may take")
    parser.add_argument("--json", action="store_true", help="also print the summary rows as JSON")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    if args.one is not None:
        result = asyncio.run(
            measure_one(
                args.one,
                seed=args.seed,
                width=args.width,
                workers=args.workers,
                concurrency=args.concurrency,
                gc_mode=args.gc,
                warmup=args.warmup,
                timeout=args.timeout,
            )
        )
        print(json.dumps(result))
        return

    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    concurrency = args.concurrency or Settings.model_fields["worker_concurrency"].default
    print(
        f"embedded engine, memory backend: layered DAG width {args.width or DEFAULT_WIDTH}, seed {args.seed}, "
        f"{args.workers} worker(s) x concurrency {concurrency}, gc {args.gc}, "
        f"warm-up {'on' if args.warmup else 'off'}, median of {args.repeat}, "
        f"Python {sys.version.split()[0]}, pid {os.getpid()}"
    )
    rows = []
    for nodes in sizes:
        runs = []
        for repeat in range(args.repeat):
            run = _child(args, nodes)
            print(
                f"  {nodes:>7} nodes, run {repeat + 1}/{args.repeat}: execute {run['execute_seconds']:.3f} s, "
                f"validate {run['validate_seconds']:.3f} s, peak RSS {run['peak_rss_mib']:.0f} MiB",
                flush=True,
            )
            runs.append(run)
        rows.append(_summarise(nodes, runs))
    print()
    _print_table(rows)
    print()
    _print_targets(rows)
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
