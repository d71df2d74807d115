"""Where a W1 hop's time goes: one in-engine chain of 200 under Redis ``MONITOR``, every command along
each hop with the server's timestamp, and the worker's own ``started`` / ``finished`` stamps (carried
by its result event), as medians per step over the hops.

    uv run python -m bench.hop_timeline [--keep /tmp/monitor.txt]

``MONITOR`` costs Redis time per command (the commit script's commands included), so the hop is
slower under it than without; the split between the steps is what this is for. The steps are those
of ``STEPS``; they follow the commands the engine sends today (the commit script's XADD of a task,
the attempt's HMGET of its parent's output, the worker's XADD of its result, the orchestrator's
EVALSHA of the commit): a change of that path needs a change here.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.engine_cluster import Cluster
from bench.processes import sigterm_as_interrupt
from bench.workload_driver import run_all
from services.settings import Settings

STEPS = (
    "the commit's XADD of the task -> the worker stamps started",
    "started -> the attempt's read of its inputs reaches Redis",
    "that read -> finished (round trip, config, handler, output check)",
    "finished -> the result's XADD reaches Redis",
    "the result's XADD -> the orchestrator's commit reaches Redis",
    "the commit reaches Redis -> its XADD of the next task",
    "whole hop (task XADD to task XADD)",
)
TASK = re.compile(r"^XADD \S+:tasks \* .* n (n\d+) ")
RESULT = re.compile(r"^XADD \S+:events \* k ok .* n (n\d+) a \d+ t ([\d.]+) w \S+ s ([\d.]+)")
INPUTS = re.compile(r"^HMGET \S+:out (n\d+)$")


@dataclass
class Timeline:
    """Per chain node: when its task was queued, its inputs read, its result sent, its commit sent."""

    task: dict[str, float] = field(default_factory=dict)
    inputs_read: dict[str, float] = field(default_factory=dict)  # keyed by the parent read
    result: dict[str, float] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=dict)
    commit: dict[str, float] = field(default_factory=dict)
    awaiting_commit: str | None = None  # the node whose result the orchestrator's next EVALSHA commits

    def add(self, at: float, command: str) -> None:
        if found := TASK.match(command):
            self.task[found.group(1)] = at
        elif found := INPUTS.match(command):
            self.inputs_read.setdefault(found.group(1), at)
        elif found := RESULT.match(command):
            node = found.group(1)
            self.result[node], self.finished[node], self.started[node] = at, float(found[2]), float(found[3])
            self.awaiting_commit = node
        elif command.startswith("EVALSHA") and self.awaiting_commit is not None:
            self.commit.setdefault(self.awaiting_commit, at)
            self.awaiting_commit = None

    def steps_ms(self) -> dict[str, list[float]]:
        found: dict[str, list[float]] = {step: [] for step in STEPS}
        for node in self.task:
            number = int(node[1:])
            parent, child = f"n{number - 1}", f"n{number + 1}"
            if not (
                node in self.result
                and node in self.commit
                and parent in self.inputs_read
                and child in self.task
            ):
                continue
            marks = (
                self.task[node],
                self.started[node],
                self.inputs_read[parent],
                self.finished[node],
                self.result[node],
                self.commit[node],
                self.task[child],
            )
            for step, earlier, later in zip(STEPS[:-1], marks[:-1], marks[1:], strict=True):
                found[step].append((later - earlier) * 1000)
            found[STEPS[-1]].append((self.task[child] - self.task[node]) * 1000)
        return found


def parse(lines: list[str]) -> Timeline:
    """``<time> <client or lua:> <command ...>`` lines, as this module writes them."""
    timeline = Timeline()
    for line in lines:
        at, _, command = line.split(" ", 2)
        timeline.add(float(at), command)
    return timeline


def _record(cluster: Cluster, args: argparse.Namespace) -> list[str]:
    client = cluster.redis.client()
    lines: list[str] = []
    done = threading.Event()

    def monitor() -> None:
        with client.monitor() as feed:  # type: ignore[no-untyped-call]
            for entry in feed.listen():
                lines.append(f"{entry['time']:.6f} {entry.get('client_type', '')}: {entry['command']}")
                if done.is_set():
                    return

    reader = threading.Thread(target=monitor, daemon=True)
    reader.start()
    time.sleep(0.5)
    asyncio.run(run_all(cluster, args, ["W1"], lambda text: None))
    done.set()
    client.ping()  # one more command, so that the monitor sees the flag
    reader.join(5)
    client.close()
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.hop_timeline", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--keep", type=Path, default=None, help="write the monitored commands to this file")
    args = parser.parse_args(argv)
    args.shards = Settings.model_fields["redis_shards"].default
    args.batch_size = Settings.model_fields["orchestrator_batch_size"].default
    args.concurrency = args.profile = args.py_spy = None
    args.orchestrators, args.seed, args.timeout = 1, 1, 120.0
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server is not installed", file=sys.stderr)
        return 2
    with sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="bench-hop-") as folder:
        cluster = Cluster(Path(folder), args, binary)
        try:
            cluster.start()  # before any thread: see bench.processes.spawn
            asyncio.run(run_all(cluster, args, ["W1"], lambda text: None))  # warm-up
            lines = _record(cluster, args)
        finally:
            cluster.stop()
    if args.keep:
        args.keep.write_text("\n".join(lines) + "\n")
    steps = parse(lines).steps_ms()
    # The means add up to the whole hop's mean; the medians do not (a preempted step makes a long tail).
    print(f"W1 under MONITOR, {len(lines)} commands; per hop, ms: median, mean (p10-p90)")
    for step, values in steps.items():
        if not values:
            print(f"  {step:66} n/a")
            continue
        ranked = sorted(values)
        low, high = ranked[len(ranked) // 10], ranked[len(ranked) * 9 // 10]
        print(
            f"  {step:66} {statistics.median(values):6.3f} {statistics.mean(values):6.3f} "
            f"({low:.3f}-{high:.3f}, {len(values)} hops)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
