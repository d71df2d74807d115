"""The processes a distributed benchmark measures, started and stopped together: its own redis-server
without persistence (or, with ``args.cluster``, its own Redis Cluster of 3 masters: ``bench.redis_nodes``),
one ``dag-service orchestrator`` (or ``args.orchestrators``) and two ``dag-service worker`` processes,
and optionally py-spy attached to each of them.

``bench.api_load.ApiStack`` subclasses it with other roles. Every process comes from
``bench.processes``: a session of its own (Ctrl-C reaches only the benchmark, which stops everything),
SIGTERM from the kernel if the benchmark dies without cleaning up, ended by process group.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import sys
import time
from pathlib import Path

from bench.api_profile import py_spy_path
from bench.engine_profile import engine_py_spy_command
from bench.processes import (
    DAG_SERVICE,
    LOOPBACK,
    LoggedProcess,
    ProcessFailed,
    RedisServer,
    ensure_running,
    free_port,
    start_logged,
    stop_together,
    wait_or_kill,
)
from bench.redis_nodes import ClusterOfMasters, OneRedis, RedisNodes, ServedNode, stream_readers

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HANDLER_MODULE = "bench.bench_handlers"
MAX_NODES = 1_000_000
"""MAX_NODES of the engine processes and of the benchmark's own container: admits every workload."""


class Cluster:
    """redis-server (or a cluster) + ``orchestrators`` orchestrators (one by default) + two workers,
    started and stopped together.

    ``args`` are the benchmark's options: ``shards``, ``concurrency``, ``batch_size``, ``profile``,
    ``py_spy``, ``orchestrators`` and ``cluster`` are read (the last two where present).
    """

    READY_WHAT = "the engine processes"  # in the message when they were not ready in time

    def __init__(self, folder: Path, args: argparse.Namespace, redis_binary: str) -> None:
        self.folder = folder
        self.args = args
        self.servers: RedisNodes = (
            ClusterOfMasters(redis_binary, folder / "cluster", replicas=args.cluster_replicas)
            if getattr(args, "cluster", False)
            else OneRedis(redis_binary, folder)
        )
        self.prefix = f"bench-{os.getpid()}-{secrets.token_hex(3)}"
        self.engine: list[LoggedProcess] = []
        self.samplers: list[LoggedProcess] = []
        self.metrics_ports: dict[str, int] = {}
        """Role -> the loopback port its ``/metrics`` is served on (``args.metrics``; else none)."""

    @property
    def redis(self) -> RedisServer:
        """The redis-server of a benchmark on one server (the API's and web's benchmarks)."""
        if not isinstance(self.servers, OneRedis):
            raise TypeError("a benchmark on a cluster has no single redis-server")
        return self.servers.server

    @property
    def port(self) -> int:
        return self.redis.port

    @property
    def url(self) -> str:
        """``REDIS_URL``: the server, or the cluster's seed (known once it has started)."""
        return self.servers.url

    @property
    def clustered(self) -> bool:
        return self.servers.cluster

    def redis_nodes(self) -> list[ServedNode]:
        """The servers that take the engine's commands: the single one, or the cluster's masters."""
        return self.servers.nodes()

    # starting

    def start(self) -> None:
        self.servers.start()
        self._start_engine()
        self._wait_engine_ready(timeout=60.0)
        if self.args.py_spy:
            self._start_samplers(Path(self.args.py_spy).resolve())

    def _spawn(self, role: str, command: list[str], env: dict[str, str] | None = None) -> LoggedProcess:
        return start_logged(
            role, command, self.folder / f"{role}.log", env=env, cwd=PROJECT_ROOT, die_with_parent=True
        )

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            ENGINE_BACKEND="redis",
            REDIS_URL=self.url,
            REDIS_KEY_PREFIX=self.prefix,
            REDIS_SHARDS=str(self.args.shards),
            WORKER_HANDLER_MODULES=HANDLER_MODULE,
            LOG_LEVEL="INFO",  # the start-up line (INFO) says a process serves
            REDIS_CLUSTER=str(self.clustered).lower(),
            MAX_NODES=str(MAX_NODES),
            MAX_EDGES=str(MAX_NODES * 10),
            ORCHESTRATOR_BATCH_SIZE=str(self.args.batch_size),
            PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
        )
        if self.args.concurrency is not None:
            env["WORKER_CONCURRENCY"] = str(self.args.concurrency)
        return env

    def _command(self, role: str, *arguments: str) -> list[str]:
        if not DAG_SERVICE.exists():
            raise RuntimeError(f"{DAG_SERVICE} not found: run through `uv run` so the project is installed")
        if self._profiled(role):
            output = Path(self.args.profile).resolve() / f"{role}.prof"
            return [sys.executable, "-m", "cProfile", "-o", str(output), str(DAG_SERVICE), *arguments]
        return [str(DAG_SERVICE), *arguments]

    def _profiled(self, role: str) -> bool:
        return bool(self.args.profile)

    def _start_engine(self) -> None:
        if self.args.profile:
            Path(self.args.profile).mkdir(parents=True, exist_ok=True)
        env = self.child_env()
        for number in range(1, getattr(self.args, "orchestrators", 1) + 1):
            role = "orchestrator" if number == 1 else f"orchestrator{number}"
            self.engine.append(
                self._spawn(role, self._command(role, "orchestrator"), self._env_of(role, env))
            )
        for number in (1, 2):
            role = f"worker{number}"
            self.engine.append(self._spawn(role, self._command(role, "worker"), self._env_of(role, env)))

    def _env_of(self, role: str, env: dict[str, str]) -> dict[str, str]:
        """``env``, plus a metrics port of the process's own when the benchmark scrapes metrics."""
        if not getattr(self.args, "metrics", False):
            return env
        port = self.metrics_ports[role] = free_port()
        return {**env, "METRICS_HOST": LOOPBACK, "METRICS_PORT": str(port)}

    def _start_samplers(self, folder: Path) -> None:
        """py-spy on each engine process (needs ptrace), collapsed stacks into DIR/<role>.txt."""
        py_spy = py_spy_path("bench.redis_mode")
        folder.mkdir(parents=True, exist_ok=True)
        for child in self.engine:
            command = engine_py_spy_command(py_spy, child.pid, folder / f"{child.name}.txt")
            self.samplers.append(self._spawn(f"py-spy-{child.name}", command))
        time.sleep(1.0)  # let py-spy attach before the workloads begin
        ensure_running(self.samplers)

    def _wait_engine_ready(self, timeout: float) -> None:
        """Each process logged its start, and those that consume streams read them (XREADGROUP).

        Consumer groups do not show a consumer until it has been given an entry, so readiness is
        read from CLIENT LIST of every node: the last command of that many connections is XREADGROUP.
        """
        nodes = self.redis_nodes()
        deadline = time.monotonic() + timeout
        while True:
            ensure_running(self.engine)
            logged = all("started" in child.tail(50) for child in self.engine)
            reading = stream_readers(nodes) >= self._blocked_reads()
            if logged and reading and self._serving():
                return
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {c.name}:\n{c.tail()}" for c in self.engine)
                raise ProcessFailed(f"{self.READY_WHAT} were not ready within {timeout:.0f} s\n{logs}")
            time.sleep(0.1)

    def _blocked_reads(self) -> int:
        """Blocking reads waiting once every consumer is ready. On one server each process blocks
        on all its streams in one XREADGROUP. On a cluster a read spans one slot, so each stream
        has its own (``adapters.redis.slotwise_reads``): every worker one per shard's task stream,
        and the orchestrators together one per shard's event stream (a shard's events are read by
        the orchestrator holding its lease)."""
        if not self.clustered:
            return self._stream_consumers()
        workers = sum(1 for child in self.engine if child.name.startswith("worker"))
        return (workers + 1) * int(self.args.shards)

    def _stream_consumers(self) -> int:
        """How many processes read streams once ready: all of them (orchestrator and workers)."""
        return len(self.engine)

    def _serving(self) -> bool:
        """Readiness beyond reading streams (a subclass with an HTTP process checks it answers)."""
        return True

    # observing

    def pids(self) -> dict[str, int]:
        """Role -> pid: the engine's processes, then each Redis node (``redis``, ``redis@<port>``)."""
        found = {child.name: child.pid for child in self.engine}
        for node in self.redis_nodes():
            if node.pid is not None:
                found[node.role] = node.pid
        return found

    # stopping

    def stop(self) -> None:
        """SIGTERM (graceful) to the engine, then redis; SIGKILL whatever lingers."""
        stop_together((child.popen for child in self.engine), 20.0)
        for sampler in self.samplers:  # py-spy writes its file when its target exits
            with contextlib.suppress(Exception):
                sampler.popen.wait(15)
            sampler.signal(signal.SIGINT)
            wait_or_kill(sampler.popen, 15.0)
        self.servers.stop()
