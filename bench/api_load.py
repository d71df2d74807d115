"""Run starts and status reads against one API process on the Redis backend, under a real HTTP load.

    uv run python -m bench.api_load [--duration S] [--connections N] [--rate R] [--no-with-engine]

Requirement: one API process on the Redis backend sustains at least 1,000 run-start requests per
second, and status reads under that load have a median under 5 ms.

The benchmark starts everything it measures and stops it at the end (also on Ctrl-C, SIGTERM or an
error): its own ``redis-server`` on a free port in a temporary folder (no persistence), ONE
``dag-service api`` process (``ENGINE_BACKEND=redis``, ``REDIS_HOST``/``REDIS_PORT``, ``API_PORT``,
``WORKER_HANDLER_MODULES=bench.bench_handlers`` so that it knows the ``noop_service`` handler), and with
``--with-engine`` (the default) one ``dag-service orchestrator`` and one ``dag-service worker`` so that
the runs really execute (they share the machine's CPUs with the API, as they would on one host).

It registers the seed's scenario A (4 nodes in a line, ``input -> get_user -> summarize_user ->
output``) with the two simulated services replaced by ``noop_service``, checks one run end to end, then runs
each phase with a separate load-generator process (``bench.http_load``: asyncio protocols on uvloop,
keep-alive HTTP/1.1 over loopback):

- ``closed`` (capacity): ``--connections`` connections each send their next run start as soon as the
  previous one is answered: the most the API can take;
- ``open`` (at the target): run starts on a fixed schedule of ``--rate`` per second (1,000), latency
  counted from the scheduled time, so a server that falls behind shows it;

and in both, status reads of runs started earlier in the phase, on their own connections, on a
fixed schedule of ``--status-rate`` per second. Each phase has ``--warmup`` seconds, then a window of
``--duration`` seconds over which everything is measured: answers per second that arrived in the
window, latency (median, p90, p99) of the requests of the window, errors (anything but 2xx, a lost
connection, an unanswered request: must be 0), each process's CPU over the window
(``/proc/<pid>/stat``), the API's CPU per answered request, and the machine's busy time
(``/proc/stat``) that none of these processes account for ("others": other work on a shared machine,
kernel network processing, steal).

Verdicts: capacity (``closed``) >= 1,000 starts/s; ``open`` phase at 1,000/s achieved (>= 99 %);
status read median < 5 ms in the ``open`` phase (the load the requirement names). The exit code is
0 when every phase ran without errors, whether the targets pass or not; 1 when a request failed or
something crashed; 2 when redis-server is missing.

``--py-spy DIR`` samples the API with py-spy (``uv run --with py-spy``) and prints where its event
loop's busy time goes, by layer (``bench.api_profile``); ``--profile DIR`` runs the API under
cProfile instead (much slower: the figures then measure the profiler).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.api_profile import py_spy_command, py_spy_path, summarise_api_samples
from bench.engine_cluster import PROJECT_ROOT, Cluster
from bench.engine_profile import summarise_profiles
from bench.http_load import Phase
from bench.proc_sampling import cpu_seconds, load_average, machine_busy_seconds, vm_hwm_mib
from bench.processes import LOOPBACK, ensure_running, free_port, kill_group, sigterm_as_interrupt, spawn
from services.settings import Settings

START_TARGET = 1_000.0  # run starts per second
STATUS_MEDIAN_TARGET_MS = 5.0
SUSTAINED_SHARE = 0.99  # the open phase passes when it achieved this share of its rate
API_PREFIX = "/api"
PHASES = ("closed", "open")
FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED")
SIMULATED_HANDLERS = ("call_external_service", "call_llm_service")


class BenchmarkFailed(RuntimeError):
    pass


# -- the definition ---------------------------------------------------------------------------------


def scenario_a_noop() -> dict[str, Any]:
    """The seed's scenario A with its simulated services (2 s and 0.1 s) replaced by ``noop_service``
    (``bench.bench_handlers``: returns at once, with the fields the scenario's templates read)."""
    definition: dict[str, Any] = json.loads(
        (PROJECT_ROOT / "examples" / "scenario_a_linear.json").read_text()
    )
    for node in definition["dag"]["nodes"]:
        if node["handler"] in SIMULATED_HANDLERS:
            node["handler"] = "noop_service"
    definition["name"] = "scenario_a_noop"
    return definition


# -- processes --------------------------------------------------------------------------------------


class ApiStack(Cluster):
    """redis-server + one API process (+ one orchestrator and one worker), started and stopped together.

    Reuses ``bench.engine_cluster.Cluster`` (Redis without persistence, process spawning, readiness
    through CLIENT LIST, py-spy samplers, orderly stop); only the roles differ.
    """

    def __init__(self, folder: Path, args: argparse.Namespace, redis_binary: str) -> None:
        super().__init__(folder, args, redis_binary)
        self.api_port = free_port()

    def child_env(self) -> dict[str, str]:
        env = super().child_env()
        for name in ("REDIS_URL", "API_TOKENS", "BACKEND_CORS_ORIGINS", "API_STR"):
            # REDIS_HOST/PORT below instead; no auth or CORS middleware; the default /api prefix
            env.pop(name, None)
            env.pop(name.lower(), None)
        env.update(
            REDIS_HOST=LOOPBACK,
            REDIS_PORT=str(self.port),
            REDIS_DB="0",
            API_HOST=LOOPBACK,
            API_PORT=str(self.api_port),
        )
        return env

    def _profiled(self, role: str) -> bool:
        return bool(self.args.profile) and role == "api"  # the engine is not what is measured

    def _start_engine(self) -> None:
        if self.args.profile:
            Path(self.args.profile).mkdir(parents=True, exist_ok=True)
        env = self.child_env()
        self.engine.append(self._spawn("api", self._command("api", "api"), env))
        if self.args.with_engine:
            self.engine.append(
                self._spawn("orchestrator", self._command("orchestrator", "orchestrator"), env)
            )
            self.engine.append(self._spawn("worker", self._command("worker", "worker"), env))

    READY_WHAT = "the processes"

    def _stream_consumers(self) -> int:
        return len(self.engine) - 1  # all but the API

    def _serving(self) -> bool:
        return self._api_ready()

    def _start_samplers(self, folder: Path) -> None:
        """py-spy on the API only, blocking, one stack per thread (see ``bench.api_profile``)."""
        py_spy = py_spy_path("bench.api_load")
        folder.mkdir(parents=True, exist_ok=True)
        api = self.engine[0]
        self.samplers.append(self._spawn("py-spy-api", py_spy_command(py_spy, api.pid, folder / "api.txt")))
        time.sleep(1.0)  # let py-spy attach before the load begins
        ensure_running(self.samplers)

    def _api_ready(self) -> bool:
        try:
            status, _ = http_call(self.api_port, "GET", f"{API_PREFIX}/ready")
        except OSError:
            return False
        return status == 200

    def check_alive(self) -> None:
        ensure_running([*self.engine, *([self.redis.process] if self.redis.process else [])])


def http_call(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request with the standard library (setup and checks only, not the load)."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    try:
        payload = None if body is None else json.dumps(body)
        headers = {} if body is None else {"Content-Type": "application/json"}
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    return response.status, json.loads(raw) if raw else None


def _expect(port: int, method: str, path: str, body: Any = None) -> Any:
    status, answer = http_call(port, method, path, body)
    if not 200 <= status < 300:
        raise BenchmarkFailed(f"{method} {path} answered {status}: {answer}")
    return answer


def register_and_check(stack: ApiStack, with_engine: bool, timeout: float = 30.0) -> str:
    """Register the definition, start one run and read its status (with the engine: until it
    COMPLETED). Returns the execution id."""
    port = stack.api_port
    execution_id = str(_expect(port, "POST", f"{API_PREFIX}/workflow", scenario_a_noop())["execution_id"])
    trigger = f"{API_PREFIX}/workflow/trigger/{execution_id}"
    instance_id = _expect(port, "POST", trigger, {"input": {"user_id": "u-check"}})["instance_id"]
    deadline = time.monotonic() + timeout
    while True:
        state = _expect(port, "GET", f"{API_PREFIX}/workflows/{instance_id}")["state"]
        if not with_engine or state in FINAL_STATES:
            break
        if time.monotonic() > deadline:
            raise BenchmarkFailed(f"the check run {instance_id} is still {state} after {timeout:.0f} s")
        time.sleep(0.05)
    if with_engine and state != "COMPLETED":
        raise BenchmarkFailed(f"the check run {instance_id} ended {state}")
    return execution_id


# -- one phase --------------------------------------------------------------------------------------


@dataclass
class CpuWindow:
    """CPU seconds of each process between the load generator's window marks."""

    pids: dict[str, int]
    before: dict[str, float | None] | None = None
    after: dict[str, float | None] | None = None
    began: float = 0.0
    ended: float = 0.0

    def mark(self, event: str) -> None:
        sample = {role: cpu_seconds(pid) for role, pid in self.pids.items()}
        sample["machine"] = machine_busy_seconds()
        if event == "window_start":
            self.before, self.began = sample, time.monotonic()
        elif event == "window_end":
            self.after, self.ended = sample, time.monotonic()

    def seconds(self) -> dict[str, float | None]:
        if self.before is None or self.after is None:
            return {}
        found: dict[str, float | None] = {}
        for role, end in self.after.items():
            start = self.before.get(role)
            found[role] = None if start is None or end is None else end - start
        machine = found.get("machine")
        if machine is not None:  # everything else running on the machine meanwhile
            ours = sum(value or 0.0 for role, value in found.items() if role != "machine")
            found["others"] = max(0.0, machine - ours)
        return found


def _phase_config(args: argparse.Namespace, mode: str, execution_id: str, port: int) -> Phase:
    return Phase(
        host=LOOPBACK,
        port=port,
        prefix=API_PREFIX,
        execution_id=execution_id,
        mode="closed" if mode == "closed" else "open",
        connections=args.connections,
        start_rate=args.rate,
        status_rate=args.status_rate,
        status_connections=args.status_connections,
        warmup=args.warmup,
        duration=args.duration,
        grace=args.grace,
    )


def run_phase(stack: ApiStack, phase: Phase, folder: Path) -> dict[str, Any]:
    """Spawn the load generator for ``phase``, sample CPU at its window marks, return its figures."""
    log = folder / f"loadgen-{phase.mode}.log"
    command = [sys.executable, "-m", "bench.http_load", json.dumps(asdict(phase))]
    with log.open("wb") as errors:
        process = spawn(
            command, stdout=subprocess.PIPE, stderr=errors, cwd=PROJECT_ROOT, die_with_parent=True
        )
    window = CpuWindow(stack.pids() | {"loadgen": process.pid})
    try:
        result = _read_events(process, window, phase.warmup + phase.duration + phase.grace + 30.0)
        if process.wait(30) != 0:
            raise BenchmarkFailed(f"the load generator exited with {process.returncode}:\n{_tail(log)}")
    finally:
        if process.poll() is None:  # interrupted or failed: it has nothing more to tell
            kill_group(process)
        if process.stdout is not None:
            process.stdout.close()
    if result is None:
        raise BenchmarkFailed(f"the load generator printed no result:\n{_tail(log)}")
    stack.check_alive()
    result["cpu_seconds"] = window.seconds()
    result["cpu_wall_seconds"] = window.ended - window.began
    return result


def _read_events(
    process: subprocess.Popen[bytes], window: CpuWindow, timeout: float
) -> dict[str, Any] | None:
    """Read the load generator's JSON lines until its result (or the end of its output)."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BenchmarkFailed(f"the load generator did not finish within {timeout:.0f} s")
        readable, _, _ = select.select([process.stdout], [], [], remaining)
        if not readable:
            continue
        line = process.stdout.readline()
        if not line:
            return None
        document: dict[str, Any] = json.loads(line)
        kind = document.pop("event")
        if kind == "result":
            return document
        window.mark(kind)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# -- verdicts and the report ------------------------------------------------------------------------


def _median(result: dict[str, Any] | None, stream: str) -> float | None:
    if result is None or result[stream]["latency_ms"] is None:
        return None
    return float(result[stream]["latency_ms"]["median"])


def verdicts(phases: dict[str, dict[str, Any]], rate: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    closed, opened = phases.get("closed"), phases.get("open")
    if closed is not None:
        value = closed["starts"]["per_second"]
        rows.append(
            _row("capacity (closed loop)", value, f">= {START_TARGET:,.0f} starts/s", value >= START_TARGET)
        )
    if opened is not None:
        value = opened["starts"]["per_second"]
        needed = SUSTAINED_SHARE * rate
        target = f">= {needed:,.0f} starts/s of {rate:,.0f}/s scheduled"
        if rate < START_TARGET:
            target += f"; the requirement needs --rate >= {START_TARGET:,.0f}"
        rows.append(_row("sustained (open loop)", value, target, value >= needed and rate >= START_TARGET))
    judged = opened if opened is not None else closed
    median = _median(judged, "statuses")
    load = 0.0 if judged is None else judged["starts"]["per_second"]
    name = (
        f"status read median under {load:,.0f} starts/s ({'open' if opened is not None else 'closed'} loop)"
    )
    passed = median is not None and median < STATUS_MEDIAN_TARGET_MS
    rows.append(_row(name, median, f"< {STATUS_MEDIAN_TARGET_MS:g} ms", passed))
    return rows


def _row(metric: str, value: float | None, target: str, passed: bool) -> dict[str, Any]:
    return {"metric": metric, "value": value, "target": target, "pass": passed}


def api_cpu_ms_per_request(result: dict[str, Any]) -> float | None:
    """The API's CPU time over the window divided by the requests it answered in the window."""
    cpu = result["cpu_seconds"].get("api")
    answered = sum(result[kind]["per_second"] for kind in ("starts", "statuses")) * result["window_seconds"]
    return None if cpu is None or not answered else cpu / answered * 1000


def _ms(stats: dict[str, Any] | None, key: str) -> str:
    return "-" if stats is None else f"{stats[key]:.2f}"


def _percent(seconds: float | None, wall: float) -> str:
    return "-" if seconds is None or wall <= 0 else f"{seconds / wall * 100:.0f}%"


def print_report(report: dict[str, Any], say: Callable[[str], None]) -> None:
    config = report["config"]
    header = (
        f"{'phase':24} {'starts/s':>9} {'med ms':>7} {'p90':>7} {'p99':>8} {'status/s':>9} {'med ms':>7} "
        f"{'p90':>7} {'p99':>8} {'errors':>6}"
    )
    say("")
    say(f"{'':24} {'-- run starts (POST trigger) --':^41} {'-- status reads (GET) --':^41}")
    say(header)
    say("-" * len(header))
    for name, result in report["phases"].items():
        starts, statuses = result["starts"], result["statuses"]
        label = (
            f"closed x{config['connections']} conn" if name == "closed" else f"open {config['rate']:,.0f}/s"
        )
        s_lat, r_lat = starts["latency_ms"], statuses["latency_ms"]
        say(
            f"{label:24} {starts['per_second']:>9,.0f} {_ms(s_lat, 'median'):>7} {_ms(s_lat, 'p90'):>7} "
            f"{_ms(s_lat, 'p99'):>8} {statuses['per_second']:>9,.0f} {_ms(r_lat, 'median'):>7} "
            f"{_ms(r_lat, 'p90'):>7} {_ms(r_lat, 'p99'):>8} {starts['errors'] + statuses['errors']:>6}"
        )
    say(
        f"window {config['duration']:g} s after {config['warmup']:g} s of warm-up; status reads "
        f"{config['status_rate']:g}/s on {config['status_connections']} connection(s); latency of open-loop "
        "requests counts from their scheduled time"
    )
    say("")
    roles = ["api", "orchestrator", "worker", "redis", "loadgen", "others", "machine"]
    heading = " ".join(f"{role:>8}" for role in roles)
    say(f"{'CPU over the window':24} {heading} {'API ms CPU/request':>19}")
    for name, result in report["phases"].items():
        wall = result["cpu_wall_seconds"]
        cells = " ".join(f"{_percent(result['cpu_seconds'].get(role), wall):>8}" for role in roles)
        per_request = api_cpu_ms_per_request(result)
        say(f"{name:24} {cells} {'-' if per_request is None else f'{per_request:.3f}':>19}")
    say(
        "100% = one core (the machine has "
        f"{config['cpus']}); others = the machine's busy time (/proc/stat) minus these processes: "
        "other work, kernel softirq, steal"
    )
    for name, result in report["phases"].items():
        states = ", ".join(f"{state} {count}" for state, count in sorted(result["status_states"].items()))
        unsent = result["starts"]["unsent"] + result["statuses"]["unsent"]
        extra = f"; {unsent} scheduled request(s) never sent" if unsent else ""
        say(f"{name}: {result['runs_started']:,} runs started; states seen by status reads: {states}{extra}")
        for sample in result["starts"]["error_samples"] + result["statuses"]["error_samples"]:
            say(f"  error: {sample}")
    say("")
    for verdict in report["targets"]:
        value = verdict["value"]
        shown = "n/a" if value is None else f"{value:,.2f}"
        outcome = "PASS" if verdict["pass"] else "FAIL"
        say(f"{outcome}  {verdict['metric']}: {shown} (target {verdict['target']})")
    say(
        f"API peak RSS {report['api_peak_mib']:.0f} MiB; load average: start {config['load_average_start']}, "
        f"end {report['load_average_end']} ({config['cpus']} CPUs; other work on the machine inflates "
        "every figure)"
    )


# -- entry point ------------------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.api_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before the window")
    parser.add_argument(
        "--connections", type=int, default=16, help="connections for run starts (closed: all busy)"
    )
    parser.add_argument("--rate", type=float, default=START_TARGET, help="run starts/s in the open phase")
    parser.add_argument("--status-rate", type=float, default=250.0, help="status reads/s (0: none)")
    parser.add_argument("--status-connections", type=int, default=4, help="connections for status reads")
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help="phases to run, in order: closed (capacity), open (at --rate)",
    )
    parser.add_argument(
        "--with-engine",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run one orchestrator and one worker, so that the runs execute",
    )
    parser.add_argument("--shards", type=int, default=Settings.model_fields["redis_shards"].default)
    parser.add_argument("--grace", type=float, default=10.0, help="seconds to wait for answers in flight")
    parser.add_argument("--profile", default=None, metavar="DIR", help="run the API under cProfile into DIR")
    parser.add_argument(
        "--py-spy", default=None, metavar="DIR", help="sample the API with py-spy into DIR/api.txt"
    )
    args = parser.parse_args(argv)
    args.phase_list = [name.strip() for name in args.phases.split(",") if name.strip()]
    unknown = [name for name in args.phase_list if name not in PHASES]
    if unknown or not args.phase_list:
        parser.error(f"unknown phase(s) {', '.join(unknown)}; choose from {', '.join(PHASES)}")
    if args.duration <= 0 or args.connections < 1 or args.rate <= 0 or args.status_rate < 0:
        parser.error("--duration, --connections and --rate must be positive, --status-rate >= 0")
    # What bench.engine_cluster.Cluster reads besides: the engine's defaults.
    args.concurrency = None
    args.batch_size = Settings.model_fields["orchestrator_batch_size"].default
    return args


def _config(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "with_engine": args.with_engine,
        "duration": args.duration,
        "warmup": args.warmup,
        "connections": args.connections,
        "rate": args.rate,
        "status_rate": args.status_rate,
        "status_connections": args.status_connections,
        "phases": args.phase_list,
        "shards": args.shards,
        "definition": "scenario_a_noop (4 nodes, linear)",
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_average_start": load_average(),
        "profiled": bool(args.profile or args.py_spy),
    }


def measure(
    stack: ApiStack, args: argparse.Namespace, folder: Path, say: Callable[[str], None]
) -> dict[str, Any]:
    stack.start()
    roles = " + ".join(child.name for child in stack.engine)
    say(
        f"redis-server on port {stack.port}, {roles} (API on port {stack.api_port}); pids "
        + ", ".join(f"{role} {pid}" for role, pid in stack.pids().items())
    )
    execution_id = register_and_check(stack, args.with_engine)
    phases: dict[str, dict[str, Any]] = {}
    for mode in args.phase_list:
        phase = _phase_config(args, mode, execution_id, stack.api_port)
        say(f"phase {mode}: {args.warmup:g} s warm-up + {args.duration:g} s measured ...")
        phases[mode] = run_phase(stack, phase, folder)
    for result in phases.values():
        result["api_cpu_ms_per_request"] = api_cpu_ms_per_request(result)
    api_pid = stack.pids()["api"]
    return {"phases": phases, "api_peak_mib": vm_hwm_mib(api_pid) or 0.0}


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)

    def say(text: str) -> None:
        print(text, flush=True)

    redis_binary = shutil.which("redis-server")
    if redis_binary is None:
        print("redis-server is not installed (apt-get install redis-server)", file=sys.stderr)
        return 2
    config = _config(args)
    with sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="bench-api-") as folder:
        stack = ApiStack(Path(folder), args, redis_binary)
        try:
            figures = measure(stack, args, Path(folder), say)
        except RuntimeError as error:  # BenchmarkFailed, or a process that would not start
            print(f"benchmark failed: {error}", file=sys.stderr)
            return 1
        finally:
            stack.stop()
    report = {
        "config": config,
        **figures,
        "targets": verdicts(figures["phases"], args.rate),
        "load_average_end": load_average(),
    }
    print_report(report, say)
    if args.profile:
        summarise_profiles(Path(args.profile).resolve(), sys.stdout)
    if args.py_spy:
        report["api_samples"] = summarise_api_samples(Path(args.py_spy).resolve() / "api.txt", say)
    print(json.dumps(report), flush=True)
    errors = sum(row[kind]["errors"] for row in figures["phases"].values() for kind in ("starts", "statuses"))
    return 1 if errors else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the cleanup has run: every process this benchmark started is stopped
        print("interrupted; redis-server, the API and the engine processes were stopped", file=sys.stderr)
        sys.exit(130)
