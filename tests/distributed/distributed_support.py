"""Running the engine in distributed mode: real ``dag-service`` processes on a test's own redis-server.

Every role (api, orchestrator, worker) is a separate OS process started through the console script
installed next to the interpreter, configured by environment variables only, with its stdout and
stderr in a log file of the test's temporary folder. Custom handlers live in a small module written
into that folder, which every process imports (``WORKER_HANDLER_MODULES``; the API needs it too, as
it validates handler names against the registry).

The task and event streams get an extra consumer group ("audit") that never reads: the engine trims a
stream only below the oldest entry some group still needs, so with this group nothing is trimmed and
the tests can count every task the orchestrators ever dispatched (XRANGE).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from definitions import node_configured as node  # noqa: F401  (the distributed and fault tests' builders)
from definitions import workflow_of as workflow  # noqa: F401
from redis_support import RedisServer

from adapters.redis.codec import decode_task
from adapters.redis.inspection import RedisInspector
from adapters.redis.keys import KeySpace
from bench.processes import (
    DAG_SERVICE,
    LOOPBACK,
    LoggedProcess,
    environment_without_settings,
    free_port,
    start_logged,
    stop_together,
)
from domain.node_state import NodeRun
from domain.statuses import RunStatus

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = PROJECT_ROOT / "examples"

SHARDS = 4
AUDIT_GROUP = "audit"
HANDLER_MODULE = "distributed_test_handlers"
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED"})

# Handlers the tests need beyond the built-in ones. ``whoami`` tells which worker process ran it;
# ``ledger`` appends a line per execution to a file and, on the first execution only, sleeps long
# enough to be killed in the middle.
HANDLERS_SOURCE = """
import asyncio
import os

from services.worker import handler


@handler("noop")
async def noop(ctx):
    return {}


@handler("whoami")
async def whoami(ctx):
    await asyncio.sleep(float(ctx.config.get("sleep_seconds", 0)))
    return {"pid": os.getpid(), "node": ctx.node_id}


@handler("ledger")
async def ledger(ctx):
    path = ctx.config["ledger"]
    with open(path, "a+", encoding="utf-8") as ledger_file:
        ledger_file.seek(0)
        earlier = len(ledger_file.read().splitlines())
        ledger_file.write(f"{ctx.run_id} {ctx.node_id} {ctx.attempt} {os.getpid()}\\n")
    if earlier == 0:
        await asyncio.sleep(float(ctx.config["first_sleep_seconds"]))
    return {"executions_before": earlier, "pid": os.getpid()}


_MOST = "local n = redis.call('INCR', KEYS[1]) " \\
    "if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end return n"


@handler("counted")
async def counted(ctx):
    # Counts the attempts with its key in flight across every worker process, in the test's Redis:
    # "<counter>:now" while it runs, and the most ever seen in "<counter>:most".
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(os.environ["REDIS_URL"])
    counter = ctx.config["counter"]
    try:
        await client.eval(_MOST, 2, f"{counter}:now", f"{counter}:most")
        await asyncio.sleep(float(ctx.config.get("sleep_seconds", 0.1)))
        await client.decr(f"{counter}:now")
    finally:
        await client.aclose()
    return {"pid": os.getpid()}
"""


def load_example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


def base_env(pycache: Path | None) -> dict[str, str]:
    """This environment without any engine setting (so the host's variables cannot leak in)."""
    return environment_without_settings(pycache)


@dataclass
class EngineProcess(LoggedProcess):
    """A ``dag-service`` process (``args``: its command line after the script), in a process group of
    its own; ``kill`` and ``stop`` (``LoggedProcess``) signal that group."""

    args: tuple[str, ...] = ()

    def log_tail(self, max_chars: int = 6000) -> str:
        text = self.log()
        return text if len(text) <= max_chars else f"[... {len(text) - max_chars} chars]" + text[-max_chars:]

    def describe(self) -> str:
        state = "running" if self.running() else f"exited with {self.popen.returncode}"
        title = f"=== {self.name} (pid {self.pid}, dag-service {' '.join(self.args)}, {state}) ==="
        return f"{title}\n{self.log_tail()}"


@dataclass
class Cluster:
    """One redis-server and the engine processes a test starts against it."""

    redis_server: RedisServer
    workdir: Path
    pycache: Path | None
    settings: dict[str, str] = field(default_factory=dict)
    processes: list[EngineProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.prefix = f"dt-{uuid.uuid4().hex[:8]}"
        self.api_port = free_port()
        # A cluster or sentinels (``topology_targets``) add the settings that reach them.
        self.settings = {**getattr(self.redis_server, "settings", dict)(), **self.settings}
        self.keys = KeySpace(self.prefix, SHARDS, self.settings.get("REDIS_CLUSTER") == "true")
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / f"{HANDLER_MODULE}.py").write_text(HANDLERS_SOURCE, encoding="utf-8")
        self.redis = self.redis_server.client()
        self.inspect = RedisInspector(self.redis, self.keys)
        """Typed views of the engine's state in Redis."""
        self._add_audit_groups()

    # -- processes ---------------------------------------------------------------------------------

    def env(self, **overrides: str) -> dict[str, str]:
        env = base_env(self.pycache)
        python_path = [str(self.workdir), env.get("PYTHONPATH", "")]
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(part for part in python_path if part),
                "ENGINE_BACKEND": "redis",
                "REDIS_URL": self.redis_server.url,
                "REDIS_KEY_PREFIX": self.prefix,
                "REDIS_SHARDS": str(SHARDS),
                "API_HOST": LOOPBACK,
                "API_PORT": str(self.api_port),
                "WORKER_HANDLER_MODULES": HANDLER_MODULE,
                "LOG_LEVEL": "INFO",  # the start-up line (INFO) says a process serves
                **self.settings,
                **overrides,
            }
        )
        return env

    def start(self, *args: str, **env_overrides: str) -> EngineProcess:
        name = f"{len(self.processes):02d}-{args[0]}"
        log_path = self.workdir / f"{name}.log"
        started = start_logged(
            name, [str(DAG_SERVICE), *args], log_path, env=self.env(**env_overrides), cwd=self.workdir
        )
        process = EngineProcess(started.name, started.popen, started.log_path, args=tuple(args))
        self.processes.append(process)
        return process

    async def start_many(self, *commands: tuple[str, ...], within: float = 30.0) -> list[EngineProcess]:
        """Start processes together and wait (``within`` seconds) until every one serves."""
        started = [self.start(*command) for command in commands]
        await asyncio.gather(*(self.wait_serving(process, within) for process in started))
        return started

    async def wait_serving(self, process: EngineProcess, within: float = 30.0) -> None:
        """Until the process logs "started ..." (after it reached Redis) and, for the API, answers;
        ``web`` also until its orchestrator, a child process logging to the same file, has started."""
        deadline = time.monotonic() + within
        wanted = ("started orchestrator", "started api") if process.args[0] == "web" else ("started ",)
        while not all(text in process.log() for text in wanted):
            self._check_alive(process)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{process.name} did not start in {within}s\n{process.describe()}")
            await asyncio.sleep(0.05)
        if process.args[0] in ("api", "web"):
            await self._wait_health(process, deadline)

    async def _wait_health(self, process: EngineProcess, deadline: float) -> None:
        async with httpx.AsyncClient(base_url=self.api_url, timeout=2.0) as client:
            while True:
                self._check_alive(process)
                try:
                    response = await client.get("/api/health")
                    if response.status_code == 200 and response.json() == {"status": "ok"}:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{process.name}: /api/health never answered\n{process.describe()}")
                await asyncio.sleep(0.05)

    @staticmethod
    def _check_alive(process: EngineProcess) -> None:
        if not process.running():
            raise RuntimeError(f"{process.name} exited early\n{process.describe()}")

    def check_all_alive(self, *, except_for: Iterable[EngineProcess] = ()) -> None:
        spared = {id(process) for process in except_for}
        for process in self.processes:
            if id(process) not in spared:
                self._check_alive(process)

    def stop_all(self) -> None:
        """SIGTERM to every process's group, SIGKILL to those still there after 5 s."""
        stop_together((process.popen for process in self.processes), 5.0)
        self.redis.close()

    def logs(self) -> str:
        return "\n".join(process.describe() for process in self.processes)

    # -- HTTP --------------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.api_port}"

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.api_url, timeout=30.0)

    # -- Redis -------------------------------------------------------------------------------------

    def _add_audit_groups(self) -> None:
        for shard in self.keys.all_shards():
            for stream in (shard.tasks, shard.events):
                self.redis.xgroup_create(stream, AUDIT_GROUP, id="0", mkstream=True)

    def run_status(self, run_ids: list[str]) -> dict[str, RunStatus | None]:
        return self.inspect.statuses(run_ids)

    async def wait_final(
        self, run_ids: list[str], within: float, *, killed: Iterable[EngineProcess] = ()
    ) -> None:
        """Until every run is COMPLETED, FAILED or CANCELLED (read cheaply from Redis); fails at once
        if an engine process other than those the test ``killed`` exits."""
        deadline = time.monotonic() + within
        waiting = list(run_ids)
        while waiting:
            statuses = self.run_status(waiting)
            waiting = [run_id for run_id, status in statuses.items() if status not in FINAL_STATES]
            if not waiting:
                return
            self.check_all_alive(except_for=killed)
            if time.monotonic() > deadline:
                sample = {run_id: statuses[run_id] for run_id in waiting[:5]}
                raise TimeoutError(
                    f"{len(waiting)} of {len(run_ids)} run(s) not final after {within}s, e.g. {sample}"
                )
            await asyncio.sleep(0.2)

    def node_states(self, run_id: str) -> dict[str, NodeRun]:
        """The state of each node of a run as stored."""
        run = self.inspect.run(run_id)
        assert run is not None, f"run {run_id} is not stored"
        return {spec.id: state for spec, state in run.node_states()}

    def stream_entries(self, kind: str) -> list[dict[str, str]]:
        """The fields of every entry of every shard's ``kind`` stream (kind: tasks, events)."""
        streams = [getattr(shard, kind) for shard in self.keys.all_shards()]
        assert all(self.redis.exists(stream) for stream in streams), f"{kind} streams missing"
        entries: list[dict[str, str]] = []
        for stream in streams:
            entries.extend(fields for _, fields in self.redis.xrange(stream))
        return entries

    def task_counts(self) -> Counter[tuple[str, str]]:
        """How many task entries the orchestrators dispatched per (run id, node id)."""
        tasks = [decode_task(fields) for fields in self.stream_entries("tasks")]
        return Counter((task.run_id, task.node_id) for task in tasks)

    def pending_tasks(self) -> int:
        """Task entries delivered to a worker and not yet acknowledged."""
        total = 0
        for shard in self.keys.all_shards():
            total += int(self.redis.xpending(shard.tasks, "workers")["pending"])
        return total


async def status(client: httpx.AsyncClient, instance_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/workflows/{instance_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def results(client: httpx.AsyncClient, instance_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/workflows/{instance_id}/results")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def gather_limited[T](coroutines: Iterable[Any], limit: int = 20) -> list[T]:
    """Await coroutines, at most ``limit`` at a time, results in order."""
    gate = asyncio.Semaphore(limit)

    async def one(coroutine: Any) -> T:
        async with gate:
            result: T = await coroutine
            return result

    return list(await asyncio.gather(*(one(coroutine) for coroutine in coroutines)))


def setup_or_call_failed(request: pytest.FixtureRequest) -> bool:
    """In a fixture's teardown: whether the test's setup or call failed (see tests/conftest.py)."""
    return any(
        getattr(getattr(request.node, f"report_{when}", None), "failed", False) for when in ("setup", "call")
    )


def print_logs(clusters: Iterable[Cluster]) -> None:
    """Every process's log and Redis's, for a failed test's output."""
    for each in clusters:
        print(f"\n##### engine logs (key prefix {each.prefix}, folder {each.workdir})")
        print(each.logs())
        redis_log = each.redis_server.folder / "redis.log"
        if redis_log.exists():
            tail = redis_log.read_text(encoding="utf-8", errors="replace")[-3000:]
            print(f"=== {redis_log} ===\n{tail}")
