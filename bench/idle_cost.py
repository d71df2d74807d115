"""What an idle deployable costs: CPU (% of one core) and Redis commands per second of each
``dag-service`` role (api, orchestrator, worker, web) with no work at all.

Each role runs alone against a redis-server of its own (loopback, no persistence), so every
command that Redis counts (``INFO commandstats``) is that process's: the measuring side's own
INFO calls are taken out. After the process has logged its start (and, for an HTTP role, answers
``/ready``) and a warm-up, the window starts; CPU comes from ``/proc/<pid>/stat``.

```bash
uv run python -m bench.idle_cost                       # every role, a 10 s window each
uv run python -m bench.idle_cost --roles web --seconds 30
uv run python -m bench.idle_cost --json                # one JSON object on stdout
```

Exit 0 whatever the figures (targets print PASS/FAIL); 1 when a process could not start; 2
without ``redis-server``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import redis

from bench.proc_sampling import cpu_seconds, load_average
from bench.processes import (
    DAG_SERVICE,
    LOOPBACK,
    LoggedProcess,
    ProcessFailed,
    RedisServer,
    environment_without_settings,
    free_port,
    start_logged,
)

ROLES = ("api", "orchestrator", "worker", "web")
HTTP_ROLES = frozenset({"api", "web"})
TARGET_CPU_PERCENT = 1.0
TARGET_COMMANDS_PER_SECOND = 20.0
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class IdleFigures:
    role: str
    seconds: float
    cpu_percent: float | None
    commands_per_second: float
    commands: dict[str, int] = field(default_factory=dict)
    """Calls per Redis command over the window, the busiest first."""
    redis_cpu_percent: float | None = None


def command_calls(client: redis.Redis) -> dict[str, int]:
    """Calls so far per command (``INFO commandstats``), keyed by lower-case command name."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def calls_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """The calls made between two readings, without the reader's own INFO (the first reading's
    INFO is counted in the second)."""
    delta = {name: count - before.get(name, 0) for name, count in after.items()}
    delta["info"] = delta.get("info", 0) - 1
    return dict(sorted(((n, c) for n, c in delta.items() if c > 0), key=lambda item: -item[1]))


@dataclass
class IdleProcess:
    """One ``dag-service ROLE`` on a redis-server of its own, in ``folder``."""

    role: str
    folder: Path
    redis_binary: str
    env: dict[str, str] = field(default_factory=dict)
    api_port: int = field(default_factory=free_port)
    process: LoggedProcess | None = None
    redis: RedisServer | None = None

    def child_env(self) -> dict[str, str]:
        assert self.redis is not None
        env = environment_without_settings()
        env.update(
            ENGINE_BACKEND="redis",
            REDIS_URL=self.redis.url,
            REDIS_KEY_PREFIX=f"idle-{secrets.token_hex(3)}",
            LOG_LEVEL="INFO",  # the start-up line says the process serves
            API_HOST=LOOPBACK,
            API_PORT=str(self.api_port),
            PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
        )
        env.update(self.env)
        return env

    def start(self, timeout: float = 60.0) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(self.redis_binary, self.folder, appendfsync=None).start()
        command = [str(DAG_SERVICE), self.role]
        log = self.folder / f"{self.role}.log"
        self.process = start_logged(self.role, command, log, env=self.child_env(), cwd=PROJECT_ROOT)
        deadline = time.monotonic() + timeout
        while not self._ready():
            self.process.ensure_running()
            if time.monotonic() > deadline:
                raise ProcessFailed(
                    f"{self.role} was not ready within {timeout:.0f} s:\n{self.process.tail()}"
                )
            time.sleep(0.1)

    def _ready(self) -> bool:
        assert self.process is not None
        if "started" not in self.process.tail(50):
            return False
        if self.role not in HTTP_ROLES:
            return True
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{self.api_port}/api/ready", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def measure(self, seconds: float) -> IdleFigures:
        """Commands and CPU over a window of ``seconds``."""
        assert self.process is not None and self.redis is not None
        client = self.redis.client()
        try:
            redis_pid = self.redis.pid
            before, cpu_before = command_calls(client), cpu_seconds(self.process.pid)
            redis_before = cpu_seconds(redis_pid) if redis_pid else None
            started = time.monotonic()
            time.sleep(seconds)
            after, cpu_after = command_calls(client), cpu_seconds(self.process.pid)
            redis_after = cpu_seconds(redis_pid) if redis_pid else None
            elapsed = time.monotonic() - started
        finally:
            client.close()
        self.process.ensure_running()
        calls = calls_between(before, after)
        return IdleFigures(
            role=self.role,
            seconds=round(elapsed, 2),
            cpu_percent=_percent(cpu_before, cpu_after, elapsed),
            commands_per_second=round(sum(calls.values()) / elapsed, 2),
            commands=calls,
            redis_cpu_percent=_percent(redis_before, redis_after, elapsed),
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(20.0)
        if self.redis is not None:
            self.redis.stop(10.0)


def _percent(before: float | None, after: float | None, elapsed: float) -> float | None:
    if before is None or after is None:
        return None
    return round(100 * (after - before) / elapsed, 2)


@contextlib.contextmanager
def idle_process(
    role: str, folder: Path, redis_binary: str, env: dict[str, str] | None = None
) -> Iterator[IdleProcess]:
    """A started ``IdleProcess``, stopped (and its Redis) on every exit path."""
    idle = IdleProcess(role, folder, redis_binary, dict(env or {}))
    try:
        idle.start()
        yield idle
    finally:
        idle.stop()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.idle_cost", description=__doc__.split("\n")[0])
    parser.add_argument("--roles", default=",".join(ROLES), help=f"comma-separated, of {', '.join(ROLES)}")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each window (10)")
    parser.add_argument("--warmup", type=float, default=3.0, help="idle seconds before the window (3)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(argv)
    args.roles = [role.strip() for role in args.roles.split(",") if role.strip()]
    unknown = [role for role in args.roles if role not in ROLES]
    if unknown:
        parser.error(f"unknown role(s) {', '.join(unknown)}; expected some of {', '.join(ROLES)}")
    return args


def _verdict(figures: IdleFigures) -> str:
    cpu_ok = figures.cpu_percent is not None and figures.cpu_percent < TARGET_CPU_PERCENT
    commands_ok = figures.commands_per_second < TARGET_COMMANDS_PER_SECOND
    return "PASS" if cpu_ok and commands_ok else "FAIL"


def print_report(results: list[IdleFigures], load: dict[str, list[float] | None]) -> None:
    say = lambda text: print(text, file=sys.stderr)  # noqa: E731
    say(f"idle cost, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs")
    say(
        f"{'role':<13} {'window s':>8} {'CPU %':>7} {'cmds/s':>8} {'redis CPU %':>11}  "
        "verdict  busiest commands"
    )
    for figures in results:
        busiest = ", ".join(f"{name} {count}" for name, count in list(figures.commands.items())[:4])
        cpu = "n/a" if figures.cpu_percent is None else f"{figures.cpu_percent:.2f}"
        redis_cpu = "n/a" if figures.redis_cpu_percent is None else f"{figures.redis_cpu_percent:.2f}"
        say(
            f"{figures.role:<13} {figures.seconds:>8.1f} {cpu:>7} {figures.commands_per_second:>8.2f} "
            f"{redis_cpu:>11}  {_verdict(figures):<7}  {busiest}"
        )
    say(
        f"targets: CPU < {TARGET_CPU_PERCENT:g} % of a core, < {TARGET_COMMANDS_PER_SECOND:g} commands/s; "
        f"load average: start {load['start']}, end {load['end']}"
    )


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    binary = shutil.which("redis-server")
    if binary is None:
        print(
            "bench.idle_cost: redis-server is not installed (apt-get install redis-server)", file=sys.stderr
        )
        return 2
    if not DAG_SERVICE.exists():
        print(f"bench.idle_cost: {DAG_SERVICE} not found: run through `uv run`", file=sys.stderr)
        return 1
    load: dict[str, list[float] | None] = {"start": load_average(), "end": None}
    results: list[IdleFigures] = []
    with tempfile.TemporaryDirectory(prefix="idle-cost-") as folder:
        try:
            for role in args.roles:
                with idle_process(role, Path(folder) / role, binary) as idle:
                    time.sleep(args.warmup)
                    results.append(idle.measure(args.seconds))
        except ProcessFailed as error:
            print(f"bench.idle_cost: {error}", file=sys.stderr)
            return 1
    load["end"] = load_average()
    print_report(results, load)
    if args.json:
        print(json.dumps({"load_average": load, "results": [asdict(r) for r in results]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
