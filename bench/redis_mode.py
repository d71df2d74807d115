"""Throughput and per-hop latency of the distributed engine: Redis, one orchestrator, two workers.

    uv run python -m bench.redis_mode [--only W1,W2] [--shards N] [--concurrency N] [--cluster] [--json]

The benchmark starts everything it measures and stops it at the end (also on Ctrl-C or an error):

1. its own ``redis-server`` on a free port in a temporary folder, **without persistence**
   (``--appendonly no --save ""``): the figures are the engine's, not the disk's; with ``--cluster``,
   its own Redis Cluster of 3 masters instead (``bench.redis_topologies``, no replicas unless
   ``--cluster-replicas``, no persistence either), which the engine reaches with
   ``REDIS_CLUSTER=true`` and ``REDIS_URL`` naming one master; the start-up lines say which master
   serves each shard's hash tag;
2. one ``dag-service orchestrator`` and two ``dag-service worker`` processes (the console script
   next to ``sys.executable``) with ``REDIS_URL``, a unique ``REDIS_KEY_PREFIX``,
   ``WORKER_HANDLER_MODULES=bench.bench_handlers`` (an async ``noop`` handler returning ``{}``),
   ``LOG_LEVEL=INFO`` (for their start-up line) and a high ``MAX_NODES``; it waits until each has
   logged its start and the
   workers and the orchestrator have joined their consumer groups, then runs one warm-up diamond;
3. from this process, through a ``Container`` on the redis backend (same URL and prefix), it
   registers each workload's definition and starts its runs, then polls the runs' meta hashes
   until their status is final (bounded by ``--timeout``).

Workloads (all nodes run ``noop``):

- W1: a linear chain of 200 nodes;
- W2: fan-out/fan-in of 2,000 nodes (1 root -> 1,998 parallel nodes -> 1 sink);
- W3: 500 concurrent runs of a diamond (A -> B, C -> D), started as fast as possible;
- W4: a 20,000-node seeded random layered DAG (1 to 3 parents per node, ``bench.dags.layered_dag``).

Time is measured from just before the first ``start()`` to the last run's ``finished_at`` (written
by the transition script that finished it); nodes/s and runs/s derive from it. Per-hop latency is
read from the node-state hashes after the run, per node that has parents, against the latest
``finished_at`` among its parents:

- **dispatch hop** = the node's ``started_at`` - parents' finished: from a parent's handler returning
  on one worker to the child's attempt starting on a worker (result event, orchestrator, transition
  script, task stream, worker). This is the hop the targets judge.
- **queue hop** = ``queued_at`` - parents' finished, as asked for originally. The transition script
  stamps ``queued_at`` with the timestamp of the event that made the node ready, which is the
  parent's ``finished_at`` itself, so this is 0 by construction (or slightly negative when parents'
  results are applied out of clock order): it is reported, but it measures nothing.
- **complete hop** = the node's ``finished_at`` - parents' finished (the whole cycle per node).

For W1 the end-to-end time divided by 200 is reported too. Memory is the peak resident set size
(``VmHWM`` of ``/proc/<pid>/status``; ``ru_maxrss`` for this process) during each workload: the
peaks are restarted through ``/proc/<pid>/clear_refs`` before each one. CPU seconds per process
over each workload come from ``/proc/<pid>/stat`` (engine CPU per node: orchestrators + workers;
Redis CPU per node apart); Redis's ``INFO commandstats`` is reset before each workload and its
costliest commands are reported, with the requests Redis read (``total_reads_processed``, about one
per round trip) and the commands it ran, per node. On a cluster every figure is read from each
master on a client of its own, summed, and also given per master (``bench.redis_nodes``).

What metrics cost: ``--metrics`` gives each engine process a ``METRICS_PORT`` of its own (which also
turns on its counting) and scrapes every process's ``/metrics`` every 0.1 s during each workload
(``bench.metrics_scrapes``); the report gives the scrapes' times. A/B: the same command without it.

Where the time goes: ``--py-spy DIR`` samples the three engine processes with py-spy (run as
``uv run --with py-spy python -m bench.redis_mode --py-spy DIR --only W2``) and prints, per process,
the busy samples by layer (socket writes, redis-py, asyncio, engine code, ...) and the engine
functions by inclusive share; ``--profile DIR`` runs them under cProfile instead (slower).

Exit 0 whether targets pass or fail; 1 if a workload did not complete; 2 if redis-server (or, for
``--cluster``, redis-cli) is missing.

This module is the command line; the pieces live in ``bench.engine_cluster`` (the processes, on
``bench.processes``), ``bench.workloads`` (W1..W4), ``bench.workload_driver`` (running and measuring
them), ``bench.run_state_reads`` (run state read from Redis), ``bench.proc_sampling`` (the ``/proc``
figures), ``bench.workload_targets`` and ``bench.workload_report`` (verdicts and tables) and
``bench.engine_profile`` (the ``--py-spy`` and ``--profile`` summaries).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench.engine_cluster import Cluster
from bench.engine_profile import summarise_profiles, summarise_samples
from bench.proc_sampling import load_average
from bench.processes import sigterm_as_interrupt
from bench.redis_nodes import ClusterOfMasters, describe_shards, shards_by_master
from bench.workload_driver import run_all
from bench.workload_report import print_report
from bench.workload_targets import CELERY_REFERENCE, verdicts
from bench.workloads import DEFAULT_WORKLOADS, WORKLOADS
from services.settings import Settings


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.redis_mode", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", default=",".join(DEFAULT_WORKLOADS), help="workloads to run, e.g. W1,W3 (or W6)"
    )
    parser.add_argument("--shards", type=int, default=Settings.model_fields["redis_shards"].default)
    parser.add_argument(
        "--concurrency", type=int, default=None, help="WORKER_CONCURRENCY per worker (default: the engine's)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=Settings.model_fields["orchestrator_batch_size"].default,
        help="ORCHESTRATOR_BATCH_SIZE",
    )
    parser.add_argument(
        "--orchestrators", type=int, default=1, help="orchestrator replicas (the replica path: 2)"
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="run on a Redis Cluster of 3 masters started by the benchmark (REDIS_CLUSTER=true)",
    )
    parser.add_argument(
        "--cluster-replicas",
        type=int,
        default=0,
        help="replicas per master with --cluster (default 0: each repeats every write on the same CPUs)",
    )
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="each engine process serves /metrics (METRICS_PORT), scraped every 0.1 s during each workload",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of W4's layered DAG")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a workload may take")
    parser.add_argument(
        "--profile",
        default=None,
        metavar="DIR",
        help="run the orchestrator and workers under cProfile, writing DIR/<role>.prof (slows them down)",
    )
    parser.add_argument(
        "--py-spy",
        default=None,
        metavar="DIR",
        help="sample the engine processes with py-spy (on PATH) into DIR/<role>.txt (collapsed stacks)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object on stdout")
    args = parser.parse_args(argv)
    unknown = [name for name in args.only.upper().split(",") if name and name not in WORKLOADS]
    if args.cluster_replicas < 0:
        parser.error("--cluster-replicas must be 0 or more")
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    selected = [name for name in WORKLOADS if name in args.only.upper().split(",")]
    out = sys.stderr if args.json else sys.stdout

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    redis_binary = shutil.which("redis-server")
    if redis_binary is None:
        print("redis-server is not installed (apt-get install redis-server)", file=sys.stderr)
        return 2
    if args.cluster and shutil.which("redis-cli") is None:
        print(
            "redis-cli is not installed (it creates the cluster): apt-get install redis-tools",
            file=sys.stderr,
        )
        return 2
    config = {
        "shards": args.shards,
        "worker_concurrency": args.concurrency or Settings.model_fields["worker_concurrency"].default,
        "orchestrator_batch_size": args.batch_size,
        "workers": 2,
        "orchestrators": args.orchestrators,
        "redis_persistence": "none (appendonly no, no RDB snapshots)",
        "redis_cluster": args.cluster,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_average_start": load_average(),
        "profiled": bool(args.profile or args.py_spy),
        "metrics": args.metrics,
    }
    with sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="bench-redis-") as folder:
        cluster = Cluster(Path(folder), args, redis_binary)
        try:
            cluster.start()
            with cluster.redis_nodes()[0].client() as probe:
                version = probe.info("server")["redis_version"]
            config["redis_version"] = version
            say(
                f"distributed engine: {cluster.servers.describe()}, redis {version} (no persistence), "
                f"{args.orchestrators} orchestrator(s) + 2 workers "
                f"x concurrency {config['worker_concurrency']}, "
                f"{args.shards} shard(s), batch {args.batch_size}, Python {config['python']}, "
                f"{config['cpus']} CPUs, load average {config['load_average_start']}"
            )
            say("pids: " + ", ".join(f"{role} {pid}" for role, pid in cluster.pids().items()))
            if isinstance(cluster.servers, ClusterOfMasters):
                placed = shards_by_master(cluster.servers, args.shards)
                config["shards_by_master"] = {str(port): numbers for port, numbers in placed.items()}
                say(f"shards by master: {describe_shards(cluster.servers, args.shards)}")
            if args.profile:
                say(f"profiling the engine processes into {Path(args.profile).resolve()} (figures inflated)")
            results = asyncio.run(run_all(cluster, args, selected, say))
        except RuntimeError as error:  # a process that would not start, py-spy missing, a timeout
            print(f"benchmark failed: {error}", file=sys.stderr)
            return 1
        finally:
            cluster.stop()
    report = {
        "config": config,
        "workloads": results,
        "targets": verdicts(results),
        "reference_celery": CELERY_REFERENCE,
        "load_average_end": load_average(),
    }
    print_report(report, out)
    if args.profile:
        summarise_profiles(Path(args.profile).resolve(), out)
    if args.py_spy:
        report["samples"] = summarise_samples(Path(args.py_spy).resolve(), out)
    if args.json:
        print(json.dumps(report))
    return 1 if any("error" in row for row in results.values()) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the cleanup has run: every process this benchmark started is stopped
        print("interrupted; redis-server and the engine processes were stopped", file=sys.stderr)
        sys.exit(130)
