"""The fault suite's harness: a distributed cluster (``distributed_support.Cluster``) with a handler
that can be told to crash, fail, sleep or wait, and a ledger that the handler writes outside Redis.

The ledger is one JSON line per thing a handler execution did (``start``, ``end``, ``fail``,
``crash``), written with ``O_APPEND`` by whichever worker process ran it, so "the handler ran at
least once" is checked independently of what Redis says. Each execution of a (run, node) gets a
number (1, 2, ...) from an exclusive file creation, so several worker processes agree on it; the
handler's options name executions by that number ("crash on execution 1", "wait for a gate file on
execution 3"), which makes a fault land on the same step every time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import socket
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from definitions import node_configured
from distributed_support import HANDLER_MODULE, Cluster, EngineProcess, print_logs, setup_or_call_failed
from http_support import submit, trigger
from run_snapshots import snapshot

from adapters.redis.codec import MalformedEntry, decode_task
from domain.history import HistoryEntry
from domain.run import Run

FAULT_HANDLER_MODULE = "fault_test_handlers"
WORKERS_GROUP, ORCHESTRATORS_GROUP = "workers", "orchestrators"
HOST = socket.gethostname()

# ``fault`` is the one handler of the suite. Options (all optional), by execution number of the
# (run, node): ``crash_on`` (SIGKILL the worker process at the start), ``fail_on`` (raise),
# ``gate`` ({"<n>" or "all": file name}: wait until that file exists in the fault folder),
# ``sleep`` (seconds, every execution), ``sleep_on`` ({"<n>": seconds}), ``output_bytes`` (pad the
# output). A list of executions may be "all". The output names the execution that produced it.
FAULT_HANDLERS_SOURCE = """
import asyncio
import json
import os
import signal
import time

from services.worker import handler

LEDGER = os.environ["FAULT_LEDGER"]
FOLDER = os.environ["FAULT_DIR"]


def _record(ctx, event, execution):
    line = json.dumps({
        "e": event, "run": ctx.run_id, "node": ctx.node_id, "attempt": ctx.attempt,
        "key": ctx.idempotency_key, "x": execution, "pid": os.getpid(), "t": time.time(),
    })
    descriptor = os.open(LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, (line + "\\n").encode())
    finally:
        os.close(descriptor)


def _next_execution(ctx):
    number = 1
    while True:
        try:
            os.close(os.open(os.path.join(FOLDER, f"x.{ctx.run_id}.{ctx.node_id}.{number}"),
                             os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return number
        except FileExistsError:
            number += 1


def _on(option, execution):
    return option == "all" or (isinstance(option, list) and execution in option)


def _for(option, execution):
    if not isinstance(option, dict):
        return None
    return option.get(str(execution), option.get("all"))


@handler("fault")
async def fault(ctx):
    config = ctx.config
    execution = _next_execution(ctx)
    _record(ctx, "start", execution)
    if _on(config.get("crash_on"), execution):
        _record(ctx, "crash", execution)
        os.kill(os.getpid(), signal.SIGKILL)
    gate = _for(config.get("gate"), execution)
    if gate:
        while not os.path.exists(os.path.join(FOLDER, gate)):
            await asyncio.sleep(0.02)
    seconds = float(config.get("sleep", 0)) + float(_for(config.get("sleep_on"), execution) or 0)
    if seconds:
        await asyncio.sleep(seconds)
    if _on(config.get("fail_on"), execution):
        _record(ctx, "fail", execution)
        raise RuntimeError(f"injected failure of execution {execution}")
    output = {"node": ctx.node_id, "key": ctx.idempotency_key, "x": execution, "pid": os.getpid()}
    if config.get("output_bytes"):
        output["pad"] = "x" * int(config["output_bytes"])
    _record(ctx, "end", execution)
    return output
"""


def fault_node(node_id: str, deps: list[str] | None = None, **options: Any) -> dict[str, Any]:
    """A node running the ``fault`` handler; ``retry`` (max attempts) adds a quick retry policy."""
    retry = options.pop("retry", None)
    spec = node_configured(node_id, "fault", deps, **options)
    if retry is not None:
        spec["retry_policy"] = {
            "max_attempts": retry,
            "initial_backoff_seconds": 0.05,
            "backoff_multiplier": 1,
            "max_backoff_seconds": 0.05,
        }
    return spec


def worker_id_of(process: EngineProcess) -> str:
    """The consumer name a ``dag-service worker`` process uses (``<host>-<pid>-worker1``)."""
    return f"{HOST}-{process.pid}-worker1"


def orchestrator_id_of(process: EngineProcess) -> str:
    return f"{HOST}-{process.pid}-orchestrator"


# -- measurements ------------------------------------------------------------------------------------

MEASUREMENTS: dict[str, list[float]] = defaultdict(list)
FIGURES: dict[str, dict[str, Any]] = {}


def measure(kind: str, seconds: float) -> None:
    """Record a recovery time; the suite prints every kind's figures at the end (conftest)."""
    MEASUREMENTS[kind].append(seconds)


def report_lines() -> list[str]:
    lines: list[str] = []
    if MEASUREMENTS:
        title = "recovery (kill -> work running again), seconds"
        width = max(len(title), *map(len, MEASUREMENTS))
        lines.append(f"{title:<{width}} {'n':>3} {'min':>6} {'median':>7} {'max':>6}")
        for kind, values in sorted(MEASUREMENTS.items()):
            lines.append(
                f"{kind:<{width}} {len(values):>3} {min(values):>6.2f} {statistics.median(values):>7.2f} "
                f"{max(values):>6.2f}"
            )
    for name, figures in FIGURES.items():
        lines.append(f"{name}: " + ", ".join(f"{key}={value}" for key, value in figures.items()))
    return lines


# -- the ledger ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerEntry:
    event: str
    run: str
    node: str
    attempt: int
    key: str
    execution: int
    pid: int
    at: float


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[LedgerEntry]:
        if not self.path.exists():
            return []
        found: list[LedgerEntry] = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            raw = json.loads(line)
            found.append(
                LedgerEntry(
                    raw["e"],
                    raw["run"],
                    raw["node"],
                    raw["attempt"],
                    raw["key"],
                    raw["x"],
                    raw["pid"],
                    raw["t"],
                )
            )
        return found

    def of(self, run_id: str, node_id: str, event: str | None = None) -> list[LedgerEntry]:
        return [
            entry
            for entry in self.entries()
            if entry.run == run_id and entry.node == node_id and (event is None or entry.event == event)
        ]


# -- the cluster -----------------------------------------------------------------------------------------


@dataclass
class FaultCluster(Cluster):
    """A ``Cluster`` whose workers have the ``fault`` handler and a ledger, and which knows which of
    its processes are meant to die (killed by the test, or crashing by design)."""

    audit: bool = True
    doomed: set[int] = field(default_factory=set)
    mortal: set[str] = field(default_factory=set)
    """Roles whose processes may die at any time (a supervisor or a chaos loop replaces them)."""
    definitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Run id -> the definition it runs (as the test submitted it)."""

    def __post_init__(self) -> None:
        self.fault_dir = self.workdir / "faults"
        self.fault_dir.mkdir(parents=True, exist_ok=True)
        self.ledger = Ledger(self.workdir / "ledger.jsonl")
        self.settings = {
            "WORKER_HANDLER_MODULES": f"{HANDLER_MODULE},{FAULT_HANDLER_MODULE}",
            "FAULT_LEDGER": str(self.ledger.path),
            "FAULT_DIR": str(self.fault_dir),
            **self.settings,
        }
        super().__post_init__()
        (self.workdir / f"{FAULT_HANDLER_MODULE}.py").write_text(FAULT_HANDLERS_SOURCE, encoding="utf-8")
        self._submitted: dict[str, str] = {}

    def _add_audit_groups(self) -> None:
        if self.audit:
            super()._add_audit_groups()

    # -- processes -------------------------------------------------------------------------------------

    def start(self, *args: str, **env_overrides: str) -> EngineProcess:
        process = super().start(*args, **env_overrides)
        if "DAG_FAULT_CRASH_AT" in env_overrides:
            self.doomed.add(process.pid)
        return process

    async def serving(self, *processes: EngineProcess, within: float = 30.0) -> None:
        """Until every one of ``processes`` serves (see ``Cluster.wait_serving``)."""
        await asyncio.gather(*(self.wait_serving(process, within) for process in processes))

    def check_all_alive(self, *, except_for: Iterable[EngineProcess] = ()) -> None:
        spared = [
            process
            for process in self.processes
            if process.pid in self.doomed or process.args[0] in self.mortal
        ]
        super().check_all_alive(except_for=[*except_for, *spared])

    def kill(self, process: EngineProcess) -> float:
        """SIGKILL ``process``; the moment it was sent."""
        self.doomed.add(process.pid)
        killed_at = time.time()
        process.kill()
        assert process.popen.returncode == -signal.SIGKILL
        return killed_at

    def retire(self, process: EngineProcess) -> None:
        """Stop ``process`` gracefully (SIGTERM) and wait until it exited."""
        self.doomed.add(process.pid)
        process.stop()

    def pause(self, process: EngineProcess) -> None:
        process.pause()

    def resume(self, process: EngineProcess) -> None:
        process.resume()

    def live(self, role: str) -> list[EngineProcess]:
        return [process for process in self.processes if process.args[0] == role and process.running()]

    def by_pid(self, pid: int) -> EngineProcess:
        [process] = [process for process in self.processes if process.pid == pid]
        return process

    async def wait_dead(self, process: EngineProcess, within: float) -> float:
        """Until ``process`` (which is meant to kill itself) has exited; the moment that was seen."""
        self.doomed.add(process.pid)
        await self.wait_until(lambda: not process.running(), within, f"{process.name} exited")
        return time.time()

    # -- runs --------------------------------------------------------------------------------------------

    async def start_run(
        self, client: httpx.AsyncClient, definition: dict[str, Any], run_input: dict[str, Any] | None = None
    ) -> str:
        """Submit ``definition`` (once per distinct definition) and trigger a run of it."""
        text = json.dumps(definition, sort_keys=True)
        if text not in self._submitted:
            self._submitted[text] = await submit(client, definition)
        run_id = await trigger(client, self._submitted[text], run_input or {})
        self.definitions[run_id] = definition
        return run_id

    def open_gate(self, name: str) -> None:
        (self.fault_dir / name).touch()

    def stored_run(self, run_id: str) -> Run:
        """The run as stored (its outputs included)."""
        run = self.inspect.run(run_id)
        assert run is not None, f"run {run_id} is not stored"
        return run

    def history(self, run_id: str) -> list[HistoryEntry]:
        return self.inspect.history(run_id)

    def snapshot(self, run_id: str) -> tuple[Any, ...]:
        """Everything stored about a run (to compare before and after something that must not
        change it)."""
        return (snapshot(self.stored_run(run_id)), self.inspect.staged(run_id), self.history(run_id))

    # -- streams ------------------------------------------------------------------------------------------

    def entries_with_ids(self, kind: str) -> list[tuple[str, str, dict[str, str]]]:
        """(stream, entry id, fields) of every entry of every shard's ``kind`` stream."""
        found = []
        for shard in self.keys.all_shards():
            stream = getattr(shard, kind)
            found.extend((stream, entry_id, fields) for entry_id, fields in self.redis.xrange(stream))
        return found

    def dispatches(self) -> Counter[tuple[str, str, int]]:
        """Task entries ever written, per (run, node, attempt) (needs the audit group); entries that
        are not tasks (a test wrote them) are left out."""
        tasks = []
        for fields in self.stream_entries("tasks"):
            with contextlib.suppress(MalformedEntry):
                tasks.append(decode_task(fields))
        return Counter((task.run_id, task.node_id, task.attempt) for task in tasks)

    def results(self, run_id: str, node_id: str) -> list[tuple[str, dict[str, str]]]:
        """(entry id, fields) of the success events reported for a node."""
        return [
            (entry_id, fields)
            for _, entry_id, fields in self.entries_with_ids("events")
            if fields.get("k") == "ok" and fields.get("r") == run_id and fields.get("n") == node_id
        ]

    def drained(self, kind: str) -> bool:
        """Every entry of every shard's ``kind`` stream delivered to its group and acknowledged."""
        group = WORKERS_GROUP if kind == "tasks" else ORCHESTRATORS_GROUP
        for shard in self.keys.all_shards():
            stream = getattr(shard, kind)
            info = self.redis.xinfo_stream(stream)
            groups = {g["name"]: g for g in self.redis.xinfo_groups(stream)}
            if group not in groups:
                return info["length"] == 0
            if groups[group]["pending"] or groups[group]["last-delivered-id"] != info["last-generated-id"]:
                return False
        return True

    def pending_of(self, kind: str, consumer: str) -> list[dict[str, Any]]:
        """Entries of ``kind`` (tasks, events) delivered to ``consumer`` and not acknowledged."""
        group = WORKERS_GROUP if kind == "tasks" else ORCHESTRATORS_GROUP
        found: list[dict[str, Any]] = []
        for shard in self.keys.all_shards():
            stream = getattr(shard, kind)
            for item in self.redis.xpending_range(stream, group, "-", "+", 1000, consumername=consumer):
                found.append({"stream": stream, **item})
        return found

    def pending_count(self, kind: str) -> int:
        group = WORKERS_GROUP if kind == "tasks" else ORCHESTRATORS_GROUP
        return sum(
            int(self.redis.xpending(getattr(shard, kind), group)["pending"])
            for shard in self.keys.all_shards()
        )

    def consumers(self, kind: str) -> list[dict[str, Any]]:
        group = WORKERS_GROUP if kind == "tasks" else ORCHESTRATORS_GROUP
        found: list[dict[str, Any]] = []
        for shard in self.keys.all_shards():
            found.extend(self.redis.xinfo_consumers(getattr(shard, kind), group))
        return found

    # -- waiting -------------------------------------------------------------------------------------------

    async def wait_until[T](
        self, probe: Callable[[], T | None], within: float, what: str, *, poll: float = 0.02
    ) -> T:
        """Poll ``probe`` until it returns something true; every process not meant to die must stay
        alive meanwhile."""
        deadline = time.monotonic() + within
        while True:
            found = probe()
            if found:
                return found
            self.check_all_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"not within {within}s: {what}")
            await asyncio.sleep(poll)

    async def wait_drained(self, within: float = 20.0) -> None:
        """Until nothing is left to deliver or acknowledge on the task and event streams."""
        await self.wait_until(
            lambda: self.drained("events") and self.drained("tasks"), within, "streams drained", poll=0.05
        )

    async def wait_settled(self, *, pending_tasks: int, within: float = 20.0) -> None:
        """Until every event is applied and every task delivered, ``pending_tasks`` of them still
        held by workers (those waiting at a gate)."""

        def settled() -> bool:
            delivered = all(
                self.redis.xinfo_stream(shard.tasks)["last-generated-id"]
                == {g["name"]: g for g in self.redis.xinfo_groups(shard.tasks)}[WORKERS_GROUP][
                    "last-delivered-id"
                ]
                for shard in self.keys.all_shards()
            )
            return self.drained("events") and delivered and self.pending_count("tasks") == pending_tasks

        await self.wait_until(settled, within, f"events applied, {pending_tasks} task(s) held", poll=0.05)

    async def ledger_entry(
        self, predicate: Callable[[LedgerEntry], bool], within: float, what: str
    ) -> LedgerEntry:
        def probe() -> LedgerEntry | None:
            return next((entry for entry in self.ledger.entries() if predicate(entry)), None)

        return await self.wait_until(probe, within, f"ledger: {what}")

    async def stay_alive(self, seconds: float) -> None:
        """Sleep ``seconds``, checking all along that no process exits unexpectedly."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.check_all_alive()
            await asyncio.sleep(0.05)
        self.check_all_alive()


class Supervisor:
    """Keeps ``count`` processes of a role running, as a process manager would: a dead one is
    replaced at once. Stop it with ``close``."""

    def __init__(self, engine: FaultCluster, role: str, count: int, *args: str, **env: str) -> None:
        self.engine = engine
        self.role = role
        self.count = count
        self.args = args
        self.env = env
        self.restarts = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Supervisor:
        self.engine.mortal.add(self.role)
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _watch(self) -> None:
        while True:
            missing = self.count - len(self.engine.live(self.role))
            for _ in range(missing):
                self.engine.start(self.role, *self.args, **self.env)
                self.restarts += 1
            await asyncio.sleep(0.05)


def chaos_pick(engine: FaultCluster, rng: random.Random) -> EngineProcess | None:
    """A random live worker or orchestrator that has finished starting."""
    candidates = [
        process
        for process in engine.live("worker") + engine.live("orchestrator")
        if "started " in process.log()
    ]
    return rng.choice(candidates) if candidates else None


def end_fault_clusters(request: pytest.FixtureRequest, made: Iterable[FaultCluster]) -> None:
    """A fault fixture's teardown: every process of every cluster stopped (paused ones resumed
    first, so that they can take their SIGTERM) and, when the test failed, their logs printed."""
    made = list(made)
    for each in made:
        for process in each.processes:
            if process.running():
                each.resume(process)
        each.stop_all()
    if setup_or_call_failed(request):
        print_logs(made)
