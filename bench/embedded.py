"""Throughput of the embedded engine on large no-op DAGs.

    uv run python -m bench.embedded [--sizes 1000,10000,100000] [--workers N] [--repeat R]

For every size and repeat the parent spawns a fresh ``python -m bench.embedded --one N`` so that the
peak RSS (``ru_maxrss``) belongs to that one run, and collects the JSON line it prints. Each child:

1. warms up on a 500-node DAG in a separate container (unless ``--no-warmup``);
2. generates a layered DAG (``bench.dags.layered_dag``) of ``noop`` nodes;
3. builds a ``Container`` whose ``registry`` is a fresh ``HandlerRegistry`` holding only an async
   no-op handler and whose ``settings`` allow the size (``max_nodes``, ``max_edges``);
4. times ``WorkflowService.register`` (validation + compilation to a plan) separately;
5. times only the execution: from ``WorkflowService.start()`` until ``EmbeddedEngine.wait_for``
   returns, with the engine's loops already started and idle (wall and CPU time);
6. checks that the run COMPLETED with one output per node.

The parent reports the median of the repeats per size and compares against the targets. It exits 0
whether targets pass or fail; only a crash (a child failing, a run not completing) exits non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
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

from bench.dags import DEFAULT_WIDTH, edge_count, layered_dag, with_rules_and_conditions
from domain.statuses import NodeStatus, RunStatus
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


def current_rss_mib() -> float | None:
    """Resident set size now (Linux only)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize() / (1024 * 1024)
    except OSError:
        return None


def reset_peak_rss() -> bool:
    """Restart the peak RSS from the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


class _GcTimer:
    """Time spent in garbage collections (via ``gc.callbacks``) and full collections, while active."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = 0
        self.full = 0
        self._started = 0.0

    def __enter__(self) -> _GcTimer:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.seconds += time.perf_counter() - self._started
        self.collections += 1
        self.full += info["generation"] == 2


async def _execute(
    nodes: int,
    seed: int,
    width: int | None,
    *,
    workers: int,
    concurrency: int | None,
    gc_mode: str,
    run_timeout: float,
    language: bool = False,
    profile: str | None = None,
) -> dict[str, Any]:
    started = time.perf_counter()
    definition = layered_dag(nodes, seed, width)
    if language:
        definition = with_rules_and_conditions(definition, seed, width or DEFAULT_WIDTH)
    generate_seconds = time.perf_counter() - started
    edges = edge_count(definition)
    container = bench_container(nodes, edges, concurrency)
    service = container.workflows()

    started = time.perf_counter()
    stored = await service.register(definition)
    validate_seconds = time.perf_counter() - started
    del definition  # like a service that has parsed the request: only the stored plan remains

    async with EmbeddedEngine(container, workers) as engine:
        await asyncio.sleep(0)  # let the orchestrator and workers reach their idle receive
        if gc_mode == "freeze":
            gc.collect()
            gc.freeze()
        elif gc_mode == "off":
            gc.collect()
            gc.disable()
        setup_peak, rss_before = peak_rss_mib(), current_rss_mib()
        peak_was_reset = reset_peak_rss()
        profiler = cProfile.Profile() if profile else None
        with _GcTimer() as collections:
            try:
                if profiler is not None:
                    profiler.enable()
                started, started_cpu = time.perf_counter(), time.process_time()
                run = await service.start(stored.definition_id, {})
                async with asyncio.timeout(run_timeout):
                    status = await engine.wait_for(run.run_id)
                execute_seconds = time.perf_counter() - started
                execute_cpu_seconds = time.process_time() - started_cpu
            finally:
                if profiler is not None:
                    profiler.disable()
                    profiler.dump_stats(profile)
                if gc_mode == "freeze":
                    gc.unfreeze()
                elif gc_mode == "off":
                    gc.enable()
        # the kernel syncs RSS counters lazily, so the restarted peak can read a little under the start
        execute_peak = max(peak_rss_mib(), rss_before or 0.0) if peak_was_reset else None

    finished = await service.get_run(run.run_id)
    skipped = sum(1 for node in finished.nodes if node.status is NodeStatus.SKIPPED)
    if status is not RunStatus.COMPLETED or len(finished.outputs) + skipped != nodes:
        raise RuntimeError(
            f"run ended {status} with {len(finished.outputs)} node outputs and {skipped} skipped of {nodes}"
        )
    return {
        "nodes": nodes,
        "edges": edges,
        "generate_seconds": generate_seconds,
        "validate_seconds": validate_seconds,
        "execute_seconds": execute_seconds,
        "execute_cpu_seconds": execute_cpu_seconds,
        "gc_collections": collections.collections,
        "gc_full_collections": collections.full,
        "gc_seconds": collections.seconds,
        "status": status.name,
        "skipped": skipped,
        "rss_before_execute_mib": rss_before,
        "peak_rss_setup_mib": setup_peak,
        "peak_rss_execute_mib": execute_peak,
        "peak_rss_mib": max(setup_peak, execute_peak or 0.0),
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
    run_timeout: float,
    language: bool = False,
    profile: str | None = None,
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "workers": workers,
        "concurrency": concurrency,
        "gc_mode": gc_mode,
        "run_timeout": run_timeout,
        "language": language,
    }
    if warmup:
        await _execute(WARMUP_NODES, seed + 1, width, **options)
    return await _execute(nodes, seed, width, **options, profile=profile)


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
    if args.language:
        command.append("--language")
    completed = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        sys.stderr.write(completed.stdout + completed.stderr)
        raise SystemExit(f"benchmark child for {nodes} nodes failed (exit {completed.returncode})")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _median(runs: list[dict[str, Any]], key: str) -> Any:
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def _summarise(nodes: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = [run["execute_seconds"] for run in runs]
    median = statistics.median(seconds)
    cpu = _median(runs, "execute_cpu_seconds")
    return {
        "nodes": nodes,
        "edges": runs[0]["edges"],
        "runs": len(runs),
        "validate_seconds": _median(runs, "validate_seconds"),
        "seconds": median,
        "min_seconds": min(seconds),
        "max_seconds": max(seconds),
        "cpu_seconds": cpu,
        "nodes_per_second": nodes / median,
        "us_per_node": median / nodes * 1e6,
        "cpu_us_per_node": cpu / nodes * 1e6,
        "peak_rss_mib": _median(runs, "peak_rss_mib"),
        "peak_rss_execute_mib": _median(runs, "peak_rss_execute_mib"),
        "rss_before_execute_mib": _median(runs, "rss_before_execute_mib"),
        "gc_collections": _median(runs, "gc_collections"),
        "gc_full_collections": _median(runs, "gc_full_collections"),
        "gc_seconds": _median(runs, "gc_seconds"),
    }


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'nodes':>7} {'edges':>7} {'validate s':>10} {'exec s':>7} {'(min-max)':>13} {'cpu s':>7} "
        f"{'nodes/s':>8} {'us/node':>7} {'cpu us/node':>11} {'peak RSS MiB':>12} {'exec peak':>9} "
        f"{'exec start':>10} {'gc runs':>7} {'(full)':>6} {'gc s':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        spread = f"{row['min_seconds']:.3f}-{row['max_seconds']:.3f}"
        print(
            f"{row['nodes']:>7} {row['edges']:>7} {row['validate_seconds']:>10.3f} {row['seconds']:>7.3f} "
            f"{spread:>13} {row['cpu_seconds']:>7.3f} {row['nodes_per_second']:>8,.0f} "
            f"{row['us_per_node']:>7.1f} {row['cpu_us_per_node']:>11.1f} {_mib(row['peak_rss_mib']):>12} "
            f"{_mib(row['peak_rss_execute_mib']):>9} {_mib(row['rss_before_execute_mib']):>10} "
            f"{row['gc_collections']:>7.0f} {row['gc_full_collections']:>6.0f} {row['gc_seconds']:>6.3f}"
        )
    print(
        "exec s: median wall time from start() to wait_for() (min-max over the repeats); cpu s: the "
        "process's CPU time over the same span.\npeak RSS: whole child process (validation "
        "included); exec peak: peak RSS during execution only; exec start: RSS when execution began.\n"
        "gc runs (full): garbage collections during execution (of them, full ones); gc s: time spent in them."
    )


def _print_targets(rows: list[dict[str, Any]]) -> None:
    """PASS/FAIL on the medians; the same figures on the fastest run and on CPU time alongside."""
    by_size = {row["nodes"]: row for row in rows}
    throughput = by_size.get(THROUGHPUT_SIZE)
    if throughput is None:
        print(f"n/a   throughput at {THROUGHPUT_SIZE:,} nodes (size not measured)")
    else:
        verdict = "PASS" if throughput["nodes_per_second"] >= THROUGHPUT_TARGET else "FAIL"
        print(
            f"{verdict}  throughput at {THROUGHPUT_SIZE:,} nodes: {throughput['nodes_per_second']:,.0f} "
            f"nodes/s (target >= {THROUGHPUT_TARGET:,.0f}; fastest run "
            f"{THROUGHPUT_SIZE / throughput['min_seconds']:,.0f}; "
            f"CPU-time based {THROUGHPUT_SIZE / throughput['cpu_seconds']:,.0f})"
        )
    smallest, largest = min(by_size), max(by_size)
    if smallest == largest:
        print("n/a   scaling (needs two sizes)")
    else:
        small, large = by_size[smallest], by_size[largest]
        ratio = large["us_per_node"] / small["us_per_node"]
        fastest = (large["min_seconds"] / largest) / (small["min_seconds"] / smallest)
        cpu_ratio = large["cpu_us_per_node"] / small["cpu_us_per_node"]
        verdict = "PASS" if ratio <= SCALING_TARGET else "FAIL"
        print(
            f"{verdict}  scaling: time per node at {largest:,} / at {smallest:,} = {ratio:.2f} "
            f"(target <= {SCALING_TARGET}; fastest runs {fastest:.2f}; CPU-time based {cpu_ratio:.2f})"
        )


def _load() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "n/a"


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
    parser.add_argument(
        "--language",
        action="store_true",
        help="the W5 shape: a third of the nodes with conditions, a tenth with other trigger rules",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a run may take")
    parser.add_argument("--json", action="store_true", help="also print the summary rows as JSON")
    parser.add_argument(
        "--one", type=int, default=None, help="measure one size in this process and print a JSON line"
    )
    parser.add_argument(
        "--profile", default=None, help="with --one: write a cProfile of the timed execution to this file"
    )
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
                run_timeout=args.timeout,
                language=args.language,
                profile=args.profile,
            )
        )
        print(json.dumps(result))
        return

    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    concurrency = args.concurrency or Settings.model_fields["worker_concurrency"].default
    print(
        f"embedded engine, memory backend: layered DAG width {args.width or DEFAULT_WIDTH}, "
        f"seed {args.seed}, "
        f"{args.workers} worker(s) x concurrency {concurrency}, gc {args.gc}, "
        f"warm-up {'on' if args.warmup else 'off'}, median of {args.repeat}, "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {_load()}"
    )
    rows = []
    for nodes in sizes:
        runs = []
        for repeat in range(args.repeat):
            run = _child(args, nodes)
            print(
                f"  {nodes:>7} nodes, run {repeat + 1}/{args.repeat}: "
                f"execute {run['execute_seconds']:.3f} s "
                f"(cpu {run['execute_cpu_seconds']:.3f} s), validate {run['validate_seconds']:.3f} s, "
                f"peak RSS {_mib(run['peak_rss_mib'])} MiB",
                flush=True,
            )
            runs.append(run)
        rows.append(_summarise(nodes, runs))
    print()
    _print_table(rows)
    print()
    _print_targets(rows)
    print(f"load average at the end: {_load()} (other work on the machine inflates wall times)")
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
