"""The HTTP path against the engine itself, in one command: issue 17's ratios, measured in one session.

    uv run python -m bench.http_path [--workloads W1,W2,W3,W4] [--styles poll,wait,sse] [--rounds 3]

Each round runs two stacks one after the other, each with its own redis-server (no persistence):

- **in-engine**: ``bench.redis_mode``'s path (``bench.engine_cluster.Cluster``: one orchestrator and
  two workers; the runs started and watched through a ``Container`` in this process,
  ``bench.workload_driver.run_all``);
- **HTTP**: ``dag-service web`` (its orchestrator a child process) + two ``dag-service worker``
  (``bench.web_path.WebStack``), driven through the seed's routes and the resource API in
  each waiting style (``bench.http_workloads``).

Before its workloads each stack measures the floor on its redis-server: one unpipelined XADD +
XREADGROUP + XACK cycle (``bench.redis_floor``, median of 2,000). W1 (under a second) runs
``--w1-repeats`` times per stack and style, and its median is kept. Rounds alternate which stack goes
first (and rotate the styles' order), because the machine is shared and noisy; each ratio is taken
within a round, and the table gives the median and range over the rounds
(``bench.http_targets``). Exit 0 whether targets are met or not; 1 if a workload did not complete
or a stack would not start; 2 without redis-server; 130 on Ctrl-C. Every process is in a group of
its own and ended by group on every exit path (``bench.processes``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.engine_cluster import Cluster
from bench.http_report import print_tables
from bench.http_targets import DEFAULT_STYLES, STYLES, WORKLOAD_FIGURES, verdicts
from bench.http_workloads import Connections, HttpDriver, HttpRefused, drive
from bench.proc_sampling import child_pids, cpu_seconds, load_average, machine_busy_seconds
from bench.processes import ProcessFailed, sigterm_as_interrupt
from bench.redis_floor import floor_cycle_ms
from bench.web_path import WebStack
from bench.workload_driver import run_all
from bench.workloads import WorkloadFailed, workload_definitions
from services.settings import Settings
from tests.definitions import diamond

Say = Callable[[str], None]


def _names(text: str, known: Any, what: str, parser: argparse.ArgumentParser) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        parser.error(f"unknown {what} {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)}")
    return names


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.http_path", description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="W1,W2,W3,W4", help="of W1,W2,W3,W4")
    parser.add_argument("--styles", default=",".join(DEFAULT_STYLES), help=f"of {','.join(STYLES)}")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each both stacks (alternating order)")
    parser.add_argument("--w1-repeats", type=int, default=5, help="W1 runs per stack and style (median kept)")
    parser.add_argument("--poll-ms", type=float, default=2.0, help="the poller's pause between reads")
    parser.add_argument("--shards", type=int, default=Settings.model_fields["redis_shards"].default)
    parser.add_argument("--concurrency", type=int, default=None, help="WORKER_CONCURRENCY per worker")
    parser.add_argument(
        "--batch-size", type=int, default=Settings.model_fields["orchestrator_batch_size"].default
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of W4's layered DAG")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a workload may take")
    parser.add_argument("--json", action="store_true", help="also print every figure as one JSON line")
    args = parser.parse_args(argv)
    args.workloads = [
        n.upper() for n in _names(args.workloads.upper(), WORKLOAD_FIGURES, "workload(s)", parser)
    ]
    args.styles = _names(args.styles, STYLES, "style(s)", parser)
    if args.rounds < 1 or args.w1_repeats < 1:
        parser.error("--rounds and --w1-repeats must be at least 1")
    # What bench.engine_cluster and bench.workload_driver read besides.
    args.profile = args.py_spy = None
    args.orchestrators = 1
    return args


def _median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Of W1's repeats, the row with the median time per hop (the others' figures kept in it)."""
    done = sorted((row for row in rows if "error" not in row), key=lambda row: row["e2e_ms_per_node"])
    if not done:
        return rows[0]
    chosen = dict(done[(len(done) - 1) // 2])
    chosen["repeats_e2e_ms_per_node"] = [row["e2e_ms_per_node"] for row in done]
    return chosen


async def _in_engine(cluster: Cluster, args: argparse.Namespace, say: Say) -> dict[str, Any]:
    floor = await floor_cycle_ms(cluster.port)
    say(f"  floor (in-engine stack's redis) median {floor['median']:.3f} ms")
    others = OthersMeter(cluster.pids())
    results = await run_all(cluster, args, args.workloads, say)
    if "W1" in results:
        repeats = [results["W1"]]
        for _ in range(args.w1_repeats - 1):
            repeats.append((await run_all(cluster, args, ["W1"], say))["W1"])
        results["W1"] = _median_row(repeats)
    return {"floor": floor, "results": results, "others_cores": others.cores()}


def _stack_pids(stack: WebStack) -> dict[str, int]:
    """Every process of the web stack, web's orchestrator child included."""
    pids = stack.pids()
    for number, pid in enumerate(child_pids(pids["web"]), 1):
        pids["web-child" if number == 1 else f"web-child{number}"] = pid
    return pids


async def _measured_http(
    driver: HttpDriver,
    style: str,
    definition: dict[str, Any],
    runs: int,
    pids: dict[str, int],
    limit_seconds: float,
) -> dict[str, Any]:
    """One workload in one style, with each process's CPU seconds and the machine's busy time
    that none of them used ("others": other work on a shared machine, the kernel's)."""
    before = {role: cpu_seconds(pid) for role, pid in pids.items()}
    busy_before = machine_busy_seconds()
    row = await asyncio.wait_for(drive(driver, style, definition, runs), limit_seconds)
    busy_after = machine_busy_seconds()
    cpu: dict[str, float | None] = {}
    for role, pid in pids.items():
        after, earlier = cpu_seconds(pid), before[role]
        cpu[role] = None if after is None or earlier is None else round(after - earlier, 3)
    if busy_before is not None and busy_after is not None:
        cpu["others"] = round(busy_after - busy_before - sum(v or 0.0 for v in cpu.values()), 3)
    row["cpu_seconds"] = cpu
    row["load_average"] = load_average()
    return row


async def _over_http(
    stack: WebStack, args: argparse.Namespace, styles: list[str], say: Say
) -> dict[str, Any]:
    floor = await floor_cycle_ms(stack.port)
    say(f"  floor (web stack's redis) median {floor['median']:.3f} ms")
    definitions = workload_definitions(args.seed)
    results: dict[str, dict[str, Any]] = {style: {} for style in styles}
    connections = Connections(stack.api_port)
    pids = {**_stack_pids(stack), "client": os.getpid()}
    others = OthersMeter(pids)
    try:
        driver = HttpDriver(connections, poll_seconds=args.poll_ms / 1000)
        for style in styles:  # warm-up: routes, scripts and connections hot
            await drive(driver, style, diamond(), 1)
        for name in args.workloads:
            description, make, runs = definitions[name]
            definition = make()
            for style in styles:
                try:
                    repeats = [
                        await _measured_http(driver, style, definition, runs, pids, args.timeout)
                        for _ in range(args.w1_repeats if name == "W1" else 1)
                    ]
                except (WorkloadFailed, TimeoutError) as error:
                    results[style][name] = {"description": description, "error": str(error) or "timed out"}
                    say(f"  {name} {style} FAILED: {error or 'timed out'}")
                    continue
                row = _median_row(repeats) if name == "W1" else repeats[0]
                row["description"] = description
                results[style][name] = row
                say(
                    f"  {name} {style:9} {row['seconds']:7.3f} s {row['nodes_per_second']:8,.0f} nodes/s "
                    f"{row['runs_per_second']:7,.1f} runs/s  CPU s {_cpu_text(row['cpu_seconds'])} "
                    f"load {row['load_average']}"
                )
    finally:
        connections.close()
    return {"floor": floor, "results": results, "others_cores": others.cores()}


class OthersMeter:
    """CPU of the machine not used by the stack's processes nor this one, in cores, over a span:
    other work on a shared machine (and the kernel's), the noise under that span's figures."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = {**pids, "self": os.getpid()}
        self.began = (time.monotonic(), machine_busy_seconds(), self._own())

    def _own(self) -> float:
        return sum(cpu_seconds(pid) or 0.0 for pid in self.pids.values())

    def cores(self) -> float | None:
        began, busy, own = self.began
        busy_now = machine_busy_seconds()
        if busy is None or busy_now is None:
            return None
        return round(((busy_now - busy) - (self._own() - own)) / (time.monotonic() - began), 2)


def _cpu_text(cpu: dict[str, float | None]) -> str:
    return " ".join(f"{role} {seconds:.2f}" for role, seconds in cpu.items() if seconds is not None)


def _round(number: int, args: argparse.Namespace, redis_binary: str, say: Say) -> dict[str, Any]:
    order = ("engine", "http") if number % 2 == 0 else ("http", "engine")
    styles = args.styles[number % len(args.styles) :] + args.styles[: number % len(args.styles)]
    figures: dict[str, Any] = {
        "order": list(order),
        "load_start": load_average(),
        "floor_ms": {},
        "others_cores": {},
    }
    for side in order:
        say(f"round {number + 1}, {'in-engine' if side == 'engine' else 'HTTP (' + ', '.join(styles) + ')'}:")
        with tempfile.TemporaryDirectory(prefix="bench-http-path-") as folder:
            stack = (
                Cluster(Path(folder), args, redis_binary)
                if side == "engine"
                else WebStack(Path(folder), args, redis_binary, apart=True)
            )
            try:
                stack.start()  # processes start outside any event loop (no threads: see bench.processes)
                if side == "engine":
                    measured = asyncio.run(_in_engine(stack, args, say))
                else:
                    assert isinstance(stack, WebStack)
                    measured = asyncio.run(_over_http(stack, args, styles, say))
            finally:
                stack.stop()
        figures["floor_ms"][side] = measured["floor"]["median"]
        figures[f"floor_{side}"] = measured["floor"]
        figures["others_cores"][side] = measured["others_cores"]
        figures[side] = measured["results"]
    figures["load_end"] = load_average()
    return figures


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    redis_binary = shutil.which("redis-server")
    if redis_binary is None:
        print("redis-server is not installed (apt-get install redis-server)", file=sys.stderr)
        return 2

    def say(text: str) -> None:
        print(text, flush=True)

    say(
        f"HTTP path against in-engine: {', '.join(args.workloads)}; styles {', '.join(args.styles)}; "
        f"{args.rounds} round(s); load average {load_average()}"
    )
    rounds = []
    broken = False
    with sigterm_as_interrupt():
        for number in range(args.rounds):
            try:
                rounds.append(_round(number, args, redis_binary, say))
            except (ProcessFailed, HttpRefused, RuntimeError) as error:
                print(f"benchmark failed in round {number + 1}: {error}", file=sys.stderr)
                broken = True
                break
    if not rounds:
        return 1
    if broken:
        say(f"the tables hold the {len(rounds)} round(s) that completed")
    rows = verdicts(rounds, args.styles, args.workloads)
    print_tables(rounds, rows, args.styles, args.workloads, sys.stdout)
    say(f"load average at the end {load_average()}")
    if args.json:
        print(json.dumps({"rounds": rounds, "verdicts": rows}, default=lambda spread: spread.__dict__))
    failed = any(
        "error" in row
        for figures in rounds
        for row in [*figures["engine"].values(), *(r for s in figures["http"].values() for r in s.values())]
    )
    return 1 if failed or broken else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the cleanup has run: every process this benchmark started is stopped
        print("interrupted; every process the benchmark started was stopped", file=sys.stderr)
        sys.exit(130)
