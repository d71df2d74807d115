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
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.engine_cluster import Cluster
from bench.hop_steps import parse
from bench.processes import sigterm_as_interrupt
from bench.workload_driver import run_all
from services.settings import Settings


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
