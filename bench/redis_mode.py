"""Throughput and per-hop latency of the distributed engine: Redis, one orchestrator, two workers.

    uv run python -m bench.redis_mode [--only W1,W2] [--shards N] [--concurrency N] [--json]

The benchmark starts everything it measures and stops it at the end (also on Ctrl-C or an error):

1. its own ``redis-server`` on a free port in a temporary folder, **without persistence**
   (``--appendonly no --save ""``): the figures are the engine's, not the disk's;
2. one ``dag-service orchestrator`` and two ``dag-service worker`` processes (the console script
   next to ``sys.executable``) with ``REDIS_URL``, a unique ``REDIS_KEY_PREFIX``,
   ``WORKER_HANDLER_MODULES=bench.bench_handlers`` (an async ``noop`` handler returning ``{}``),
   ``LOG_LEVEL=WARNING`` and a high ``MAX_NODES``; it waits until each has logged its start and the
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
over each workload come from ``/proc/<pid>/stat`` (engine CPU per node: orchestrator + workers +
Redis); Redis's ``INFO commandstats`` is reset before each workload and its costliest commands are
reported, with the requests Redis read (``total_reads_processed``, about one per round trip) and
the commands it ran, per node.

Where the time goes: ``--py-spy DIR`` samples the three engine processes with py-spy (run as
``uv run --with py-spy python -m bench.redis_mode --py-spy DIR --only W2``) and prints, per process,
the busy samples by layer (socket writes, redis-py, asyncio, engine code, ...) and the engine
functions by inclusive share; ``--profile DIR`` runs them under cProfile instead (slower).

Exit 0 whether targets pass or fail; 1 if a workload did not complete; 2 if redis-server is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import pstats
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import redis
from dependency_injector import providers

import bench.bench_handlers  # noqa: F401  (registers "noop" in this process too)
from bench.api_profile import py_spy_path
from bench.dags import edge_count, layered_dag
from bench.stats import distribution_ms
from services.container import Container, close_backend, open_backend
from services.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HANDLER_MODULE = "bench.bench_handlers"
WORKLOADS = ("W1", "W2", "W3", "W4")
CHAIN_NODES = 200
FAN_NODES = 2_000
DIAMOND_RUNS = 500
LAYERED_NODES = 20_000
START_PARALLELISM = 64  # W3: start() calls in flight at once
MAX_NODES = 1_000_000

TARGETS = {
    "W1": ("median dispatch hop", "hop_dispatch_ms.median", "<=", 1.0, "ms"),
    "W2": ("throughput", "nodes_per_second", ">=", 5_000.0, "nodes/s"),
    "W3": ("throughput", "runs_per_second", ">=", 500.0, "runs/s"),
    "W4": ("throughput", "nodes_per_second", ">=", 5_000.0, "nodes/s"),
}
CELERY_REFERENCE = {"W1_ms_per_hop": 2.0, "W2_tasks_per_second": 640.0, "W3_runs_per_second": 138.0}
CELERY_TEXT = (
    "reference for scale: Celery 5 on Redis, tuned, 2 prefork workers, on this kind of machine: "
    "W1 2.0 ms per hop, W2 640 tasks/s, W3 138 runs/s"
)

# -- definitions ------------------------------------------------------------------------------------


def _node(node_id: str, dependencies: list[str]) -> dict[str, Any]:
    return {"id": node_id, "handler": "noop", "dependencies": dependencies, "config": {}}


def chain(length: int) -> dict[str, Any]:
    nodes = [_node("n0", [])] + [_node(f"n{i}", [f"n{i - 1}"]) for i in range(1, length)]
    return {"name": f"chain-{length}", "dag": {"nodes": nodes}}


def fan_out_in(total: int) -> dict[str, Any]:
    middle = [f"p{i}" for i in range(total - 2)]
    nodes = [_node("root", []), *(_node(p, ["root"]) for p in middle), _node("sink", middle)]
    return {"name": f"fan-{total}", "dag": {"nodes": nodes}}


def diamond() -> dict[str, Any]:
    nodes = [_node("a", []), _node("b", ["a"]), _node("c", ["a"]), _node("d", ["b", "c"])]
    return {"name": "diamond", "dag": {"nodes": nodes}}


# -- processes --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the benchmark dies without cleaning up (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    role: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Cluster:
    """redis-server + one orchestrator + two workers, started and stopped together."""

    def __init__(self, folder: Path, args: argparse.Namespace, redis_binary: str) -> None:
        self.folder = folder
        self.args = args
        self.redis_binary = redis_binary
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.prefix = f"bench-{os.getpid()}-{secrets.token_hex(3)}"
        self.redis: Child | None = None
        self.engine: list[Child] = []
        self.samplers: list[Child] = []

    # starting

    def start(self) -> None:
        self._start_redis()
        self._start_engine()
        self._wait_engine_ready(timeout=60.0)
        if self.args.py_spy:
            self._start_samplers(Path(self.args.py_spy).resolve())

    def _spawn(self, role: str, command: list[str], env: dict[str, str] | None = None) -> Child:
        log = self.folder / f"{role}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                command,
                cwd=PROJECT_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches only the benchmark, which stops everything
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
            )
        return Child(role, process, log)

    def _start_redis(self) -> None:
        command = [
            self.redis_binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.folder),
            "--appendonly",
            "no",
            "--save",
            "",
            "--protected-mode",
            "no",
            "--logfile",
            "",
        ]
        self.redis = self._spawn("redis", command)
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 15
        try:
            while True:
                with contextlib.suppress(redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError):
                    if client.ping():
                        return
                self._check_alive([self.redis])
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not answer within 15 s")
                time.sleep(0.05)
        finally:
            client.close()

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            ENGINE_BACKEND="redis",
            REDIS_URL=self.url,
            REDIS_KEY_PREFIX=self.prefix,
            REDIS_SHARDS=str(self.args.shards),
            WORKER_HANDLER_MODULES=HANDLER_MODULE,
            LOG_LEVEL="WARNING",
            MAX_NODES=str(MAX_NODES),
            MAX_EDGES=str(MAX_NODES * 10),
            ORCHESTRATOR_BATCH_SIZE=str(self.args.batch_size),
            PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
        )
        if self.args.concurrency is not None:
            env["WORKER_CONCURRENCY"] = str(self.args.concurrency)
        return env

    def _command(self, role: str, *arguments: str) -> list[str]:
        script = Path(sys.executable).parent / "dag-service"
        if not script.exists():
            raise RuntimeError(f"{script} not found: run through `uv run` so the project is installed")
        if self._profiled(role):
            output = Path(self.args.profile).resolve() / f"{role}.prof"
            return [sys.executable, "-m", "cProfile", "-o", str(output), str(script), *arguments]
        return [str(script), *arguments]

    def _profiled(self, role: str) -> bool:
        return bool(self.args.profile)

    def _start_engine(self) -> None:
        if self.args.profile:
            Path(self.args.profile).mkdir(parents=True, exist_ok=True)
        env = self.child_env()
        self.engine.append(self._spawn("orchestrator", self._command("orchestrator", "orchestrator"), env))
        for number in (1, 2):
            role = f"worker{number}"
            self.engine.append(self._spawn(role, self._command(role, "worker"), env))

    def _start_samplers(self, folder: Path) -> None:
        """py-spy on each engine process (needs ptrace), collapsed stacks into DIR/<role>.txt."""
        py_spy = py_spy_path("bench.redis_mode")
        folder.mkdir(parents=True, exist_ok=True)
        for child in self.engine:
            command = [
                py_spy,
                *("record", "--pid", str(child.pid), "--rate", "250", "--nonblocking", "--function"),
                *("--format", "raw", "--output", str(folder / f"{child.role}.txt")),
            ]
            self.samplers.append(self._spawn(f"py-spy-{child.role}", command))
        time.sleep(1.0)  # let py-spy attach before the workloads begin
        self._check_alive(self.samplers)

    def _check_alive(self, children: list[Child]) -> None:
        for child in children:
            if child.process.poll() is not None:
                raise RuntimeError(
                    f"{child.role} exited with code {child.process.returncode}:\n{child.tail()}"
                )

    def _wait_engine_ready(self, timeout: float) -> None:
        """Each process logged its start, and all three read their streams (XREADGROUP).

        Consumer groups do not show a consumer until it has been given an entry, so readiness is
        read from CLIENT LIST: the last command of three connections is XREADGROUP.
        """
        client = redis.Redis(port=self.port, socket_timeout=5, decode_responses=True)
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._check_alive(self.engine)
                logged = all("started" in child.tail(50) for child in self.engine)
                reading = sum(1 for entry in client.client_list() if entry.get("cmd") == "xreadgroup")
                if logged and reading >= len(self.engine):
                    return
                if time.monotonic() > deadline:
                    logs = "\n".join(f"--- {c.role}:\n{c.tail()}" for c in self.engine)
                    raise RuntimeError(f"the engine processes were not ready within {timeout:.0f} s\n{logs}")
                time.sleep(0.1)
        finally:
            client.close()

    # observing

    def pids(self) -> dict[str, int]:
        found = {child.role: child.pid for child in self.engine}
        if self.redis is not None:
            found["redis"] = self.redis.pid
        return found

    # stopping

    def stop(self) -> None:
        """SIGTERM (graceful) to the engine, then redis; SIGKILL whatever lingers."""
        for child in self.engine:
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.process.terminate()
        for child in self.engine:
            _wait_or_kill(child.process, 20.0)
        for sampler in self.samplers:  # py-spy writes its file when its target exits
            if sampler.process.poll() is None:
                with contextlib.suppress(Exception):
                    sampler.process.wait(15)
            if sampler.process.poll() is None:
                sampler.process.send_signal(signal.SIGINT)
            _wait_or_kill(sampler.process, 15.0)
        if self.redis is not None and self.redis.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.redis.process.terminate()
            _wait_or_kill(self.redis.process, 10.0)


def _wait_or_kill(process: subprocess.Popen[bytes], seconds: float) -> None:
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


# -- /proc figures ----------------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def vm_hwm_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def reset_peak(pid: int) -> bool:
    """Restart the peak RSS of ``pid`` from its current RSS (Linux >= 4.0)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def own_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


# -- statistics -------------------------------------------------------------------------------------


def hop_latencies(
    definition: dict[str, Any], states: dict[str, dict[str, Any]], created_at: float
) -> dict[str, list[float]]:
    """Per node with parents: queued, started and finished minus the parents' latest finish."""
    hops: dict[str, list[float]] = {"queue": [], "dispatch": [], "complete": [], "run_start": []}
    for node in definition["dag"]["nodes"]:
        state = states[node["id"]]
        dependencies = node["dependencies"]
        if not dependencies:
            if state.get("st"):
                hops["run_start"].append(float(state["st"]) - created_at)
            continue
        ready = max(float(states[parent]["f"]) for parent in dependencies)
        hops["queue"].append(float(state["q"]) - ready)
        if state.get("st"):
            hops["dispatch"].append(float(state["st"]) - ready)
        hops["complete"].append(float(state["f"]) - ready)
    return hops


# -- workloads --------------------------------------------------------------------------------------


class WorkloadFailed(RuntimeError):
    pass


@dataclass
class Bench:
    cluster: Cluster
    container: Container
    client: Any  # redis.asyncio.Redis, shared with the container
    timeout: float
    say: Callable[[str], None]


async def _wait_finished(bench: Bench, run_ids: list[str], poll: float) -> dict[str, dict[str, str]]:
    """Poll the runs' meta hashes until every status is final; bounded by ``bench.timeout``."""
    keys = bench.container.key_space()
    pending = {run_id: keys.run(run_id).meta for run_id in run_ids}
    finished: dict[str, dict[str, str]] = {}
    began = time.monotonic()
    deadline = began + bench.timeout
    while pending:
        pipe = bench.client.pipeline(transaction=False)
        for meta in pending.values():
            pipe.hmget(meta, "status", "finished_at", "created_at", "unfinished")
        replies = await pipe.execute()
        for run_id, (status, finished_at, created_at, unfinished) in zip(list(pending), replies, strict=True):
            if status in ("COMPLETED", "FAILED", "CANCELLED"):
                finished[run_id] = {"status": status, "finished_at": finished_at, "created_at": created_at}
                del pending[run_id]
            elif time.monotonic() > deadline:
                raise WorkloadFailed(
                    f"{len(pending)} run(s) not finished after {bench.timeout:.0f} s "
                    f"(e.g. {run_id}: status {status}, {unfinished} node(s) unfinished)"
                )
        if pending:
            # Timing comes from finished_at, not from when the poll sees it: back off on long runs so
            # that polling does not steal CPU from the engine (2 % of the time waited so far).
            await asyncio.sleep(max(poll, min(0.1, (time.monotonic() - began) * 0.02)))
    return finished


async def _node_states(bench: Bench, run_ids: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    keys = bench.container.key_space()
    states: dict[str, dict[str, dict[str, Any]]] = {}
    for start in range(0, len(run_ids), 100):
        batch = run_ids[start : start + 100]
        pipe = bench.client.pipeline(transaction=False)
        for run_id in batch:
            pipe.hgetall(keys.run(run_id).nodes)
        for run_id, raw in zip(batch, await pipe.execute(), strict=True):
            states[run_id] = {node_id: json.loads(value) for node_id, value in raw.items()}
    return states


async def run_workload(
    bench: Bench, definition: dict[str, Any], *, runs: int = 1, poll: float = 0.005
) -> dict[str, Any]:
    service = bench.container.workflows()
    nodes = len(definition["dag"]["nodes"])
    started = time.perf_counter()
    stored = await service.register(definition)
    register_seconds = time.perf_counter() - started

    limit = asyncio.Semaphore(START_PARALLELISM)

    async def start_one() -> str:
        async with limit:
            return (await service.start(stored.definition_id, {})).run_id

    t0 = time.time()
    started = time.perf_counter()
    if runs == 1:
        run_ids = [await start_one()]
    else:
        run_ids = list(await asyncio.gather(*(start_one() for _ in range(runs))))
    start_seconds = time.perf_counter() - started
    finished = await _wait_finished(bench, run_ids, poll)
    observed_seconds = time.perf_counter() - started

    failed = {run_id: meta["status"] for run_id, meta in finished.items() if meta["status"] != "COMPLETED"}
    if failed:
        run_id, status = next(iter(failed.items()))
        raise WorkloadFailed(f"{len(failed)} run(s) did not complete (e.g. {run_id}: {status})")
    seconds = max(float(meta["finished_at"]) for meta in finished.values()) - t0

    states = await _node_states(bench, run_ids)
    hops: dict[str, list[float]] = {"queue": [], "dispatch": [], "complete": [], "run_start": []}
    for run_id in run_ids:
        created_at = float(finished[run_id]["created_at"])
        for name, values in hop_latencies(definition, states[run_id], created_at).items():
            hops[name].extend(values)

    result: dict[str, Any] = {
        "nodes": nodes,
        "edges": edge_count(definition),
        "runs": runs,
        "register_seconds": register_seconds,
        "start_seconds": start_seconds,
        "seconds": seconds,
        "observed_seconds": observed_seconds,
        "nodes_per_second": nodes * runs / seconds,
        "runs_per_second": runs / seconds,
        "hop_dispatch_ms": distribution_ms(hops["dispatch"]),
        "hop_queue_ms": distribution_ms(hops["queue"]),
        "hop_complete_ms": distribution_ms(hops["complete"]),
        "run_start_ms": distribution_ms(hops["run_start"]),
    }
    if runs > 1:
        result["starts_per_second"] = runs / start_seconds
    return result


def workload_definitions(seed: int) -> dict[str, tuple[str, Callable[[], dict[str, Any]], int]]:
    """name -> (description, definition factory, runs)."""
    return {
        "W1": (f"linear chain of {CHAIN_NODES} nodes", lambda: chain(CHAIN_NODES), 1),
        "W2": (f"fan-out/fan-in of {FAN_NODES:,} nodes", lambda: fan_out_in(FAN_NODES), 1),
        "W3": (f"{DIAMOND_RUNS} concurrent diamond runs", diamond, DIAMOND_RUNS),
        "W4": (
            f"{LAYERED_NODES:,}-node layered DAG (seed {seed})",
            lambda: layered_dag(LAYERED_NODES, seed),
            1,
        ),
    }


async def _commandstats(client: Any) -> list[dict[str, Any]]:
    stats = await client.info("commandstats")
    rows = [
        {
            "command": name.removeprefix("cmdstat_"),
            "calls": int(values["calls"]),
            "usec": int(values["usec"]),
            "usec_per_call": float(values["usec_per_call"]),
        }
        for name, values in stats.items()
    ]
    rows.sort(key=lambda row: row["usec"], reverse=True)
    return rows


async def measured(bench: Bench, name: str, body: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run one workload with peaks restarted, CPU time and Redis command statistics around it."""
    pids = {**bench.cluster.pids(), "bench": os.getpid()}
    for pid in pids.values():
        reset_peak(pid)
    await bench.client.config_resetstat()
    stats_before = await bench.client.info("stats")
    cpu_before = {role: cpu_seconds(pid) for role, pid in pids.items()}
    try:
        result = await body
    finally:
        load = load_average()
    stats_after = await bench.client.info("stats")
    cpu = {}
    for role, pid in pids.items():
        after, before = cpu_seconds(pid), cpu_before[role]
        cpu[role] = None if after is None or before is None else after - before
    peaks: dict[str, float | None] = {role: vm_hwm_mib(pid) for role, pid in bench.cluster.pids().items()}
    peaks["bench"] = own_peak_mib()
    total_nodes = result["nodes"] * result["runs"]
    result["e2e_ms_per_node"] = result["seconds"] / total_nodes * 1000
    result["cpu_seconds"] = cpu
    engine_cpu = [cpu.get(role) for role in ("orchestrator", "worker1", "worker2", "redis")]
    if all(value is not None for value in engine_cpu):
        result["engine_cpu_ms_per_node"] = sum(engine_cpu) / total_nodes * 1000  # type: ignore[arg-type]
    # Requests Redis read from its sockets (~ round trips, the benchmark's own polling included).
    for key, field in (
        ("redis_reads_per_node", "total_reads_processed"),
        ("redis_commands_per_node", "total_commands_processed"),
    ):
        if field in stats_after and field in stats_before:
            result[key] = (int(stats_after[field]) - int(stats_before[field])) / total_nodes
    result["peak_mib"] = peaks
    result["redis_commands"] = (await _commandstats(bench.client))[:8]
    result["load_average"] = load
    return result


async def run_all(
    cluster: Cluster, args: argparse.Namespace, selected: list[str], say: Callable[[str], None]
) -> dict[str, Any]:
    container = Container()
    container.backend.override("redis")
    settings = Settings(
        redis_url=cluster.url,
        redis_key_prefix=cluster.prefix,
        redis_shards=args.shards,
        max_nodes=MAX_NODES,
        max_edges=MAX_NODES * 10,
    )
    container.settings.override(providers.Object(settings))
    await open_backend(container)
    bench = Bench(cluster, container, container.redis_client(), args.timeout, say)
    results: dict[str, Any] = {}
    try:
        await run_workload(bench, diamond())  # warm-up: scripts loaded, connections open, code paths hot
        say("warm-up run done")
        for name, (description, make, runs) in workload_definitions(args.seed).items():
            if name not in selected:
                continue
            definition = make()
            poll = 0.05 if runs > 1 else 0.005
            try:
                row = await measured(bench, name, run_workload(bench, definition, runs=runs, poll=poll))
            except WorkloadFailed as error:
                results[name] = {"description": description, "error": str(error)}
                say(f"{name} FAILED TO COMPLETE: {error}")
                continue
            row["description"] = description
            results[name] = row
            say(_progress_line(name, row))
    finally:
        await close_backend(container)
    return results


# -- reporting --------------------------------------------------------------------------------------


def _get(row: dict[str, Any], dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _progress_line(name: str, row: dict[str, Any]) -> str:
    return (
        f"{name} done: {row['seconds']:.3f} s, {row['nodes_per_second']:,.0f} nodes/s, "
        f"dispatch hop median {_ms(_get(row, 'hop_dispatch_ms.median'))} ms, load {row['load_average']}"
    )


def verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, (label, key, op, target, unit) in TARGETS.items():
        if name not in results:
            continue
        value = _get(results[name], key)
        passed = value is not None and (value <= target if op == "<=" else value >= target)
        rows.append(
            {
                "workload": name,
                "metric": label,
                "key": key,
                "value": value,
                "target": f"{op} {target:g} {unit}",
                "pass": passed,
            }
        )
    return rows


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
            f"{_ms(_get(row, 'hop_dispatch_ms.median')):>8} {_ms(_get(row, 'hop_dispatch_ms.p99')):>8} "
            f"{_ms(_get(row, 'hop_queue_ms.median')):>9} {_ms(_get(row, 'hop_complete_ms.median')):>8} "
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
        if "redis_reads_per_node" in row:
            extras.append(
                f"Redis {row['redis_reads_per_node']:.1f} requests and "
                f"{row['redis_commands_per_node']:.1f} commands per node"
            )
        if row.get("run_start_ms"):
            start = row["run_start_ms"]
            extras.append(
                f"run start -> root started median {_ms(start['median'])} p99 {_ms(start['p99'])} ms"
            )
        say(f"  {name}: " + ", ".join(extras))

    say()
    roles = ["orchestrator", "worker1", "worker2", "redis", "bench"]
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
            f"(queued_at - parent finished_at) median {_ms(_get(w1, 'hop_queue_ms.median'))} ms"
        )
    say(CELERY_TEXT)
    config = report["config"]
    say(
        f"load average: start {config['load_average_start']}, end {report['load_average_end']} "
        f"({config['cpus']} CPUs; other work on the machine inflates every figure)"
    )


def summarise_profiles(folder: Path, out: TextIO) -> None:
    for profile in sorted(folder.glob("*.prof")):
        print(f"\n--- {profile} (top 15 by own time)", file=out)
        try:
            pstats.Stats(str(profile), stream=out).sort_stats("tottime").print_stats(15)
        except (OSError, TypeError, ValueError) as error:
            print(f"could not read: {error}", file=out)


IDLE_FRAME = "EpollSelector.select"
PROJECT_PACKAGES = ("services/", "adapters/", "domain/", "bench/")
LAYERS: tuple[tuple[str, Callable[[str], bool]], ...] = (  # (name, test on a leaf frame), first match wins
    ("socket writes (sendmsg)", lambda frame: "_write_sendmsg" in frame or "writelines" in frame),
    ("redis-py", lambda frame: "(redis/" in frame),
    ("hiredis/parsing", lambda frame: "hiredis" in frame),
    ("asyncio event loop", lambda frame: "(asyncio/" in frame or "(selectors.py" in frame),
    ("engine code", lambda frame: any(f"({package}" in frame for package in PROJECT_PACKAGES)),
    ("json", lambda frame: "(json/" in frame),
    ("pydantic", lambda frame: "pydantic" in frame),
)


def _layer(frame: str) -> str:
    return next((name for name, test in LAYERS if test(frame)), "other")


def summarise_samples(folder: Path, out: TextIO, top: int = 12) -> dict[str, Any]:
    """Where each engine process spent its busy samples (py-spy collapsed stacks).

    Samples whose innermost frame is the event loop's epoll wait count as idle. Busy samples are
    split by the layer of their innermost frame, and the engine's own functions are ranked by
    inclusive share (time in them and everything they call).
    """
    summary: dict[str, Any] = {}
    for path in sorted(folder.glob("*.txt")):
        own: dict[str, int] = {}
        layers: dict[str, int] = {}
        inclusive: dict[str, int] = {}
        total = idle = 0
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = stack.split(";")
            total += count
            if IDLE_FRAME in frames[-1]:
                idle += count
                continue
            own[frames[-1]] = own.get(frames[-1], 0) + count
            layer = _layer(frames[-1])
            layers[layer] = layers.get(layer, 0) + count
            for frame in set(frames):
                if (
                    any(f"({package}" in frame for package in PROJECT_PACKAGES)
                    and "services/cli" not in frame
                ):
                    inclusive[frame] = inclusive.get(frame, 0) + count
        busy = total - idle
        if not busy:
            continue

        def ranked(counts: dict[str, int], limit: int, busy: int = busy) -> dict[str, float]:
            return {key: n / busy for key, n in sorted(counts.items(), key=lambda kv: -kv[1])[:limit]}

        role = path.stem
        summary[role] = {
            "samples": total,
            "idle_share": idle / total,
            "busy_by_layer": ranked(layers, len(layers)),
            "busy_own": ranked(own, top),
            "busy_inclusive_engine": ranked(inclusive, top),
        }
        print(
            f"\n--- {role}: {total} samples at 250 Hz, {idle / total * 100:.0f}% idle in epoll; "
            "busy samples by layer of the innermost frame:",
            file=out,
        )
        print(
            "  " + ", ".join(f"{k} {v * 100:.0f}%" for k, v in summary[role]["busy_by_layer"].items()),
            file=out,
        )
        print("  busy, own time:", file=out)
        for frame, share in summary[role]["busy_own"].items():
            print(f"  {share * 100:5.1f}%  {frame}", file=out)
        print("  busy, inclusive, engine functions:", file=out)
        for frame, share in summary[role]["busy_inclusive_engine"].items():
            print(f"  {share * 100:5.1f}%  {frame}", file=out)
    return summary


# -- entry point ------------------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.redis_mode", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(WORKLOADS), help="workloads to run, e.g. W1,W3")
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
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    return args


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """A SIGTERM to the benchmark unwinds like Ctrl-C, so the cleanup runs."""

    def interrupt(number: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    config = {
        "shards": args.shards,
        "worker_concurrency": args.concurrency or Settings.model_fields["worker_concurrency"].default,
        "orchestrator_batch_size": args.batch_size,
        "workers": 2,
        "orchestrators": 1,
        "redis_persistence": "none (appendonly no, no RDB snapshots)",
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_average_start": load_average(),
        "profiled": bool(args.profile or args.py_spy),
    }
    with _sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="bench-redis-") as folder:
        cluster = Cluster(Path(folder), args, redis_binary)
        try:
            cluster.start()
            with redis.Redis(port=cluster.port, decode_responses=True) as probe:
                version = probe.info("server")["redis_version"]
            config["redis_version"] = version
            say(
                f"distributed engine: redis-server {version} on port {cluster.port} (no persistence), "
                f"1 orchestrator + 2 workers x concurrency {config['worker_concurrency']}, "
                f"{args.shards} shard(s), batch {args.batch_size}, Python {config['python']}, "
                f"{config['cpus']} CPUs, load average {config['load_average_start']}"
            )
            say("pids: " + ", ".join(f"{role} {pid}" for role, pid in cluster.pids().items()))
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
