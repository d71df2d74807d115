"""One Redis against a Redis Cluster of 3 masters, alternating, in one session: ``bench.redis_mode``
(its JSON) with and without ``--cluster``, for 1 and 2 orchestrators, round after round.

    flock /tmp/heavy.lock uv run python -m bench.topology_ab [--rounds 3] [--only W2,W4] [--out DIR]

Each run is a fresh ``python -m bench.redis_mode --json`` (its own Redis or cluster, engine
processes, everything stopped at its end); the order of the two topologies is swapped every round,
so that a drift of the machine's load does not favour one of them. Printed per topology,
orchestrators and workload: throughput (every run, and the range), Redis's requests and commands
per node of the DAG, the commit script's calls (one per shard per orchestrator batch) and the
requests per commit, CPU per node (engine, Redis), and on the cluster the share of the commands the
busiest master ran. ``--out DIR`` keeps each run's JSON and report.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.proc_sampling import load_average
from bench.processes import finish_captured, sigterm_as_interrupt, spawn_captured, stop_group

RUN_TIMEOUT_SECONDS = 900.0
TOPOLOGIES = ("single", "cluster")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.topology_ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="W2,W4", help="workloads (bench.redis_mode --only)")
    parser.add_argument("--orchestrators", default="1,2", help="orchestrator counts to measure, e.g. 1,2")
    parser.add_argument("--shards", type=int, default=None, help="REDIS_SHARDS (default: the engine's)")
    parser.add_argument("--out", default=None, metavar="DIR", help="keep each run's JSON and report here")
    args = parser.parse_args(argv)
    try:
        args.orchestrator_counts = [int(n) for n in args.orchestrators.split(",") if n.strip()]
    except ValueError:
        parser.error(f"--orchestrators: expected numbers separated by commas, got {args.orchestrators!r}")
    if args.rounds < 1 or not args.orchestrator_counts or min(args.orchestrator_counts) < 1:
        parser.error("--rounds and every --orchestrators count must be 1 or more")
    return args


def _one_run(args: argparse.Namespace, topology: str, orchestrators: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.redis_mode", "--json", "--only", args.only]
    command += ["--orchestrators", str(orchestrators)]
    if args.shards is not None:
        command += ["--shards", str(args.shards)]
    if topology == "cluster":
        command.append("--cluster")
    process = spawn_captured(command)
    try:
        stdout, stderr = finish_captured(process, RUN_TIMEOUT_SECONDS)
    except BaseException:
        # Its own session does not get our Ctrl-C: SIGTERM makes it stop what it started.
        stop_group(process, 60.0)
        raise
    lines = stdout.strip().splitlines()
    if process.returncode not in (0, 1) or not lines:
        raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}:\n{stderr[-3000:]}")
    report: dict[str, Any] = json.loads(lines[-1])
    report["stderr"] = stderr
    return report


def _workload_figures(row: dict[str, Any]) -> dict[str, Any]:
    nodes = row["nodes"] * row["runs"]
    per_master = row["redis_nodes"]
    calls: dict[str, int] = {}
    for node in per_master:
        for command, count in node["commandstats"].items():
            calls[command] = calls.get(command, 0) + count
    commits = calls.get("evalsha", 0)
    total_commands = sum(node["commands"] for node in per_master) or 1
    reads = row["redis_reads_per_node"] * nodes
    return {
        "nodes_per_second": row["nodes_per_second"],
        "reads_per_node": row["redis_reads_per_node"],
        "commands_per_node": row["redis_commands_per_node"],
        "commits": commits,
        "blocking_reads": calls.get("xreadgroup", 0),
        "key_lookups": calls.get("command|getkeys", 0),
        "reads_per_commit": reads / commits if commits else None,
        "engine_cpu_ms_per_node": row.get("engine_cpu_ms_per_node"),
        "redis_cpu_ms_per_node": row.get("redis_cpu_ms_per_node"),
        "busiest_master_share": max(node["commands"] for node in per_master) / total_commands,
        "per_master_commands": [node["commands"] for node in per_master],
        "load": row.get("load_average"),
    }


def _order(key: tuple[str, int, str]) -> tuple[str, int, str]:
    topology, orchestrators, name = key
    return name, orchestrators, topology


def _span(values: list[float], fmt: str) -> str:
    shown = ", ".join(format(v, fmt) for v in values)
    return f"{format(min(values), fmt)}-{format(max(values), fmt)} ({shown})"


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    with sigterm_as_interrupt():
        return _alternate(args)


def _alternate(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve() if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    print(f"load average at the start: {load_average()}", flush=True)
    figures: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    placements: set[str] = set()
    for round_number in range(1, args.rounds + 1):
        order = TOPOLOGIES if round_number % 2 else TOPOLOGIES[::-1]
        for orchestrators in args.orchestrator_counts:
            for topology in order:
                report = _one_run(args, topology, orchestrators)
                if out is not None:
                    stem = out / f"r{round_number}-{topology}-o{orchestrators}"
                    stem.with_suffix(".txt").write_text(report.pop("stderr"))
                    stem.with_suffix(".json").write_text(json.dumps(report))
                if "shards_by_master" in report["config"]:
                    counts = sorted(map(len, report["config"]["shards_by_master"].values()))
                    placements.add(json.dumps(counts))
                for name, row in report["workloads"].items():
                    if "error" in row:
                        print(f"round {round_number} {topology} x{orchestrators} {name}: {row['error']}")
                        continue
                    found = _workload_figures(row)
                    figures.setdefault((topology, orchestrators, name), []).append(found)
                    print(
                        f"round {round_number} {topology:7} {orchestrators} orchestrator(s) {name}: "
                        f"{found['nodes_per_second']:,.0f} nodes/s, {found['reads_per_node']:.2f} requests "
                        f"and {found['commands_per_node']:.2f} commands per node, load {found['load']}",
                        flush=True,
                    )
    print()
    print(
        "topology orch workload | nodes/s | requests/node | commands/node | requests/commit | "
        "engine CPU ms/node | Redis CPU ms/node | busiest master's share of commands | calls"
    )
    for (topology, orchestrators, name), rows in sorted(figures.items(), key=lambda item: _order(item[0])):
        per_commit = [r["reads_per_commit"] for r in rows if r["reads_per_commit"] is not None]
        print(
            f"{topology:8} {orchestrators:>4} {name:8} | "
            f"{_span([r['nodes_per_second'] for r in rows], ',.0f')} | "
            f"{_span([r['reads_per_node'] for r in rows], '.2f')} | "
            f"{_span([r['commands_per_node'] for r in rows], '.2f')} | "
            f"{_span(per_commit, '.1f') if per_commit else 'n/a'} | "
            f"{_span([r['engine_cpu_ms_per_node'] for r in rows], '.2f')} | "
            f"{_span([r['redis_cpu_ms_per_node'] for r in rows], '.3f')} | "
            f"{_span([r['busiest_master_share'] for r in rows], '.0%')} | "
            f"XREADGROUP {_span([r['blocking_reads'] for r in rows], ',')}, "
            f"COMMAND GETKEYS {_span([r['key_lookups'] for r in rows], ',')}, "
            f"commits {_span([r['commits'] for r in rows], ',')}"
        )
    if placements:
        print(f"shards per master (sorted counts) on the clusters: {', '.join(sorted(placements))}")
    print(f"load average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; each run stops its own processes", file=sys.stderr)
        sys.exit(130)
