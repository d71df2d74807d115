"""What ``REDIS_WAIT_REPLICAS`` costs: the engine on a primary with one replica, every write waiting
(WAIT) for the replica, against the same with no waiting, alternating in one session.

    uv run python -m bench.replica_wait [--only W1,W2,W3] [--pairs 2]

Each round starts its own primary and replica (no persistence, as ``bench.redis_mode``), one
orchestrator and two workers with ``REDIS_WAIT_REPLICAS`` 0 or 1, runs the workloads through
``bench.workload_driver`` and stops everything (also on Ctrl-C or an error). On loopback the
replica acknowledges within a fraction of a millisecond: the figures are the cost of the extra
round trip per write, the floor of what a replica in another rack adds on top of its latency.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.engine_cluster import Cluster
from bench.proc_sampling import load_average
from bench.processes import free_ports, sigterm_as_interrupt
from bench.redis_topologies.servers import ReplicatedRedisServer, call, poll, replica_online
from bench.workload_driver import run_all
from services.settings import Settings

FIGURES = {
    "W1": ("e2e_ms_per_node", "ms per hop"),
    "W2": ("nodes_per_second", "nodes/s"),
    "W3": ("runs_per_second", "runs/s"),
}


class ReplicatedCluster(Cluster):
    """``Cluster`` on a primary with one replica, its processes writing with ``wait_replicas``."""

    def __init__(self, folder: Path, args: argparse.Namespace, binary: str, wait_replicas: int) -> None:
        super().__init__(folder, args, binary)
        primary, replica = free_ports(2)
        self.redis = ReplicatedRedisServer(
            binary, folder / "primary", port=primary, appendfsync=None, die_with_parent=True
        )
        self.replica = ReplicatedRedisServer(
            binary,
            folder / "replica",
            port=replica,
            replica_of=primary,
            appendfsync=None,
            die_with_parent=True,
        )
        self.port, self.url = self.redis.port, self.redis.url
        self.wait_replicas = wait_replicas

    def start(self) -> None:
        self.redis.start()
        self.replica.start()
        poll("the replica online", lambda: replica_online(self.redis.port), 30.0)
        super()._start_engine()
        self._wait_engine_ready(timeout=60.0)

    def child_env(self) -> dict[str, str]:
        return {**super().child_env(), "REDIS_WAIT_REPLICAS": str(self.wait_replicas)}

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            self.replica.stop(10.0)


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.replica_wait", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--only", default="W1,W2,W3", help="workloads (of W1, W2, W3)")
    parser.add_argument("--pairs", type=int, default=2, help="rounds of (no waiting, waiting)")
    args = parser.parse_args(argv)
    args.shards = Settings.model_fields["redis_shards"].default
    args.batch_size = Settings.model_fields["orchestrator_batch_size"].default
    args.concurrency, args.orchestrators, args.seed, args.timeout = None, 1, 1, 300.0
    args.profile = args.py_spy = None
    return args


def _round(
    args: argparse.Namespace, binary: str, wait_replicas: int, selected: list[str]
) -> tuple[dict[str, Any], int]:
    """The workloads' figures, and how many WAITs the primary answered (proof that writes waited)."""
    with tempfile.TemporaryDirectory(prefix="bench-wait-") as folder:
        cluster = ReplicatedCluster(Path(folder), args, binary, wait_replicas)
        try:
            cluster.start()
            results = asyncio.run(run_all(cluster, args, selected, lambda text: None))
            stats = call(cluster.port, "INFO", "commandstats")
            return results, int(stats.get("cmdstat_wait", {}).get("calls", 0))
        finally:
            cluster.stop()


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    selected = [name for name in FIGURES if name in args.only.upper().split(",")]
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server is not installed (apt-get install redis-server)", file=sys.stderr)
        return 2
    print(f"primary + 1 replica on loopback, 1 orchestrator + 2 workers; load average {load_average()}")
    figures: dict[tuple[str, int], list[float]] = {}
    with sigterm_as_interrupt():
        for pair in range(args.pairs):
            for wait_replicas in (0, 1):
                results, waits = _round(args, binary, wait_replicas, selected)
                label = f"pair {pair + 1}, REDIS_WAIT_REPLICAS={wait_replicas}"
                print(f"{label}: {waits:,} WAITs answered in the last workload")
                for name in selected:
                    value = float(results[name][FIGURES[name][0]])
                    figures.setdefault((name, wait_replicas), []).append(value)
                    print(
                        f"pair {pair + 1}, REDIS_WAIT_REPLICAS={wait_replicas}: "
                        f"{name} {value:,.2f} {FIGURES[name][1]}",
                        flush=True,
                    )
    print(f"\nload average at the end {load_average()}")
    for name in selected:
        plain, waiting = figures[(name, 0)], figures[(name, 1)]
        print(
            f"{name} ({FIGURES[name][1]}): wait 0: {min(plain):,.2f}-{max(plain):,.2f}; "
            f"wait 1: {min(waiting):,.2f}-{max(waiting):,.2f}"
        )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; the servers and engine processes were stopped", file=sys.stderr)
        sys.exit(130)
