"""The distributed benchmark's report: a progress line per workload, then the tables (latencies,
memory and CPU per process, Redis's costliest commands) and the verdicts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO

from bench.workload_targets import CELERY_TEXT, lookup
from bench.workloads import CHAIN_NODES


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def progress_line(name: str, row: dict[str, Any]) -> str:
    return (
        f"{name} done: {row['seconds']:.3f} s, {row['nodes_per_second']:,.0f} nodes/s, "
        f"dispatch hop median {_ms(lookup(row, 'hop_dispatch_ms.median'))} ms, load {row['load_average']}"
    )


def print_report(report: dict[str, Any], out: TextIO) -> None:
    def say(text: str = "") -> None:
        print(text, file=out)

    results = report["workloads"]
    ok = {name: row for name, row in results.items() if "error" not in row}
    say()
    header = (
        f"{'':3} {'workload':40} {'nodes':>7} {'runs':>4} {'seconds':>8} {'nodes/s':>8} {'runs/s':>7} "
        f"{'disp med':>8} {'disp p99':>8} {'queue med':>9} {'cmpl med':>8} {'e2e/node':>8}"
    )
    say(header)
    say("-" * len(header))
    for name, row in ok.items():
        say(
            f"{name:3} {row['description']:40} {row['nodes']:>7} {row['runs']:>4} {row['seconds']:>8.3f} "
            f"{row['nodes_per_second']:>8,.0f} {row['runs_per_second']:>7,.1f} "
            f"{_ms(lookup(row, 'hop_dispatch_ms.median')):>8} {_ms(lookup(row, 'hop_dispatch_ms.p99')):>8} "
            f"{_ms(lookup(row, 'hop_queue_ms.median')):>9} {_ms(lookup(row, 'hop_complete_ms.median')):>8} "
            f"{row['e2e_ms_per_node']:>8.2f}"
        )
    for name, row in results.items():
        if "error" in row:
            say(f"{name:3} {row['description']:40} did not complete: {row['error']}")
    say(
        "latencies in ms, per node with parents, against its parents' latest finished_at: disp = "
        "started_at - that (a result's\ntrip through the orchestrator to a worker); queue = queued_at - "
        "that (0 by construction: queued_at is stamped with the\nparent's finished_at); cmpl = "
        "finished_at - that. e2e/node = seconds / all nodes of all runs (for W1 the time per hop)."
    )
    for name, row in ok.items():
        extras = [f"register {row['register_seconds']:.3f} s", f"start() {row['start_seconds']:.3f} s"]
        if "starts_per_second" in row:
            extras.append(f"{row['starts_per_second']:,.0f} starts/s")
        if "engine_cpu_ms_per_node" in row:
            extras.append(f"engine CPU {row['engine_cpu_ms_per_node']:.2f} ms/node")
        if "redis_cpu_ms_per_node" in row:
            extras.append(f"Redis CPU {row['redis_cpu_ms_per_node']:.2f} ms/node")
        if "redis_reads_per_node" in row:
            extras.append(
                f"Redis {row['redis_reads_per_node']:.1f} requests and "
                f"{row['redis_commands_per_node']:.1f} commands per node"
            )
        if row.get("metrics_scrapes"):
            extras.append(_scrapes(row["metrics_scrapes"]))
        if row.get("run_start_ms"):
            start = row["run_start_ms"]
            extras.append(
                f"run start -> root started median {_ms(start['median'])} p99 {_ms(start['p99'])} ms"
            )
        say(f"  {name}: " + ", ".join(extras))

    say()
    roles = list(dict.fromkeys(role for row in ok.values() for role in (*row["cpu_seconds"], "bench")))
    heading = " ".join(f"{role:>12}" for role in roles)
    say(f"{'peak RSS MiB':16} {heading}   | {'CPU s':16} {heading}   | load average")
    for name, row in ok.items():
        peaks = " ".join(f"{_mib(row['peak_mib'].get(role)):>12}" for role in roles)
        cpu = " ".join(f"{_seconds(row['cpu_seconds'].get(role)):>12}" for role in roles)
        wall = f"(wall {row['seconds']:.2f})"
        load = " ".join(map(str, row["load_average"] or []))
        say(f"{name:16} {peaks}   | {wall:16} {cpu}   | {load}")
    say(
        "peak RSS: VmHWM (ru_maxrss for the bench process) during the workload, restarted before it; "
        "CPU s: user+system CPU\nseconds of each process over the workload (2 CPUs: at most 2 x wall "
        "in total)."
    )

    say()
    say("Redis commands by total time per workload (INFO commandstats: calls, usec/call, total ms):")
    for name, row in ok.items():
        parts = [
            f"{c['command']} {c['calls']:,}x{c['usec_per_call']:.1f}us={c['usec'] / 1000:.0f}ms"
            for c in row["redis_commands"][:6]
        ]
        say(f"  {name}: " + ", ".join(parts))
    _per_redis_node(ok, say)

    say()
    for verdict in report["targets"]:
        value = verdict["value"]
        shown = "n/a" if value is None else f"{value:,.2f}"
        say(
            f"{'PASS' if verdict['pass'] else 'FAIL'}  {verdict['workload']} {verdict['metric']}: {shown} "
            f"(target {verdict['target']})"
        )
    if "W1" in ok:
        w1 = ok["W1"]
        say(
            f"      W1 also: end-to-end / {CHAIN_NODES} = {w1['e2e_ms_per_node']:.2f} ms per hop; queue hop "
            f"(queued_at - parent finished_at) median {_ms(lookup(w1, 'hop_queue_ms.median'))} ms"
        )
    say(CELERY_TEXT)
    config = report["config"]
    say(
        f"load average: start {config['load_average_start']}, end {report['load_average_end']} "
        f"({config['cpus']} CPUs; other work on the machine inflates every figure)"
    )


def _per_redis_node(ok: dict[str, Any], say: Callable[[str], None]) -> None:
    """On a cluster, what each master did: where the workload's shards are, and that nothing else
    ran there (a single run lives in one shard, hence on one master)."""
    if not any(len(row.get("redis_nodes", [])) > 1 for row in ok.values()):
        return
    say("")
    say("per master (requests read, commands, CPU s; the commands with the most calls):")
    for name, row in ok.items():
        for node in row["redis_nodes"]:
            busiest = sorted(node["commandstats"].items(), key=lambda item: item[1], reverse=True)[:5]
            calls = ", ".join(f"{command} {count:,}" for command, count in busiest)
            say(
                f"  {name} {node['role']:>12}: {node['reads']:>8,} requests, "
                f"{node['commands']:>8,} commands, "
                f"CPU {_seconds(node['cpu_seconds'])} s; {calls or 'nothing'}"
            )


def _scrapes(summary: dict[str, Any]) -> str:
    """``--metrics``: how long the scrapes of every process's ``/metrics`` took during the workload."""
    every = summary["all"]
    if every is None:
        return f"/metrics: no scrape answered ({summary['failed']} failed)"
    failed = f", {summary['failed']} failed" if summary["failed"] else ""
    return (
        f"/metrics scrape median {_ms(every['median'])} p99 {_ms(every['p99'])} max {_ms(every['max'])} ms "
        f"({every['count']} scrapes{failed})"
    )
