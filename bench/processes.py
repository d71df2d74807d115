"""Starting, watching and ending the processes that tests and benchmarks run: redis-server, ``dag-service``
and helpers (py-spy, the HTTP load generator).

Every process starts in a session of its own, hence in a process group of its own, and is ended
through that group, on every exit path:

- Ctrl-C in a terminal reaches only the test run or the benchmark, whose cleanup then stops its
  processes in order (the engine before Redis), instead of the terminal interrupting all of them at
  once while their owner still talks to them;
- a signal sent to the group reaches whatever the process itself started.

A group is signalled only while its leader has not been reaped: after that, its id may belong to
another process (Linux keeps the number allocated only while some member of the group lives).

The benchmarks (``bench.engine_cluster``, ``bench.api_load``), the Redis topologies
(``bench.redis_topologies``: Cluster, Sentinel) and the tests (``tests/redis_support.py``,
``tests/distributed``, ``tests/faults``, ``tests/e2e``) share this module; the tests import it as
``bench.processes``, which works because the editable install of the project puts the repository
root on ``sys.path`` (``_editable_impl_dag_workflow_engine.pth``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Self

import redis

from services.settings import Settings

LOOPBACK = "127.0.0.1"
DAG_SERVICE = Path(sys.executable).parent / "dag-service"
"""The console script ``uv run dag-service`` runs: the one installed next to this interpreter."""

type Output = int | IO[Any] | None


class ProcessFailed(RuntimeError):
    """A process exited when it should be running, or did not become ready in time."""


def free_port() -> int:
    """A TCP port nothing listens on at the moment (bound on loopback and released at once)."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports nothing listens on at the moment: all bound at once, then released
    (one ``free_port`` after another may hand out the same port twice)."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind((LOOPBACK, 0))
        return [int(probe.getsockname()[1]) for probe in probes]


# -- starting ------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the parent dies without cleaning up (Linux)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(
    command: Sequence[str],
    *,
    stdout: Output = subprocess.DEVNULL,
    stderr: Output = subprocess.STDOUT,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``command`` in a session of its own, stdin from /dev/null.

    ``die_with_parent`` asks the kernel to SIGTERM the child when its parent dies. It runs Python
    in the child between fork and exec (``preexec_fn``), which is unsafe while the parent has other
    threads (a lock held by one of them stays held in the child): the benchmarks start their
    processes before any thread exists and use it; the tests (asyncio's executor, httpx) do not.
    """
    return subprocess.Popen(
        list(command),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        env=env,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=_die_with_parent if die_with_parent and sys.platform == "linux" else None,  # noqa: PLW1509
    )


def spawn_captured(
    command: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[str]:
    """Start ``command`` in a session of its own with stdout and stderr captured as UTF-8 text."""
    return subprocess.Popen(
        list(command),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env=env,
        cwd=cwd,
        start_new_session=True,
    )


def environment_without_settings(
    pycache_prefix: Path | None = None, *, drop: Iterable[str] = ()
) -> dict[str, str]:
    """This process's environment without any engine setting (so that the host's variables cannot
    leak into a child) nor the names in ``drop`` (compared in upper case).

    Start-up is mostly compiling imports when bytecode caches are forbidden
    (``PYTHONDONTWRITEBYTECODE``): with ``pycache_prefix`` the child keeps them there instead, outside
    the source tree; it changes nothing but start-up time.
    """
    dropped = {name.upper() for name in Settings.model_fields} | {name.upper() for name in drop}
    env = {key: value for key, value in os.environ.items() if key.upper() not in dropped}
    if pycache_prefix is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache_prefix)
    return env


# -- ending, by process group ------------------------------------------------------------------------


def signal_group(process: subprocess.Popen[Any], number: int) -> bool:
    """Send signal ``number`` to the process's group; False (nothing sent) once it has exited."""
    if process.poll() is not None:
        return False
    # Not reaped yet (a zombie at worst), so its pid still names its group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, number)
    return True


def kill_group(process: subprocess.Popen[Any], wait_seconds: float = 10.0) -> None:
    """SIGKILL to the group, then wait until the process is gone."""
    signal_group(process, signal.SIGKILL)
    process.wait(wait_seconds)


def terminate_group(process: subprocess.Popen[Any]) -> None:
    """SIGTERM to the group, and SIGCONT so that a paused (SIGSTOP) process receives it."""
    if signal_group(process, signal.SIGTERM):
        signal_group(process, signal.SIGCONT)


def wait_or_kill(process: subprocess.Popen[Any], seconds: float) -> None:
    """Wait ``seconds`` for the process to exit, then kill its group."""
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        kill_group(process)


def stop_group(process: subprocess.Popen[Any], grace_seconds: float) -> None:
    """SIGTERM (a graceful stop), SIGKILL if it has not exited within ``grace_seconds``."""
    terminate_group(process)
    wait_or_kill(process, grace_seconds)


def stop_together(processes: Iterable[subprocess.Popen[Any]], grace_seconds: float) -> None:
    """SIGTERM to all first (they stop in parallel), then SIGKILL what is left after ``grace_seconds``."""
    processes = list(processes)
    for process in processes:
        terminate_group(process)
    deadline = time.monotonic() + grace_seconds
    for process in processes:
        wait_or_kill(process, max(0.1, deadline - time.monotonic()))


def finish_captured(process: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """stdout and stderr of a ``spawn_captured`` process once it exits; after ``timeout`` seconds
    its group is killed and ``subprocess.TimeoutExpired`` carries what it had written."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        signal_group(process, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise subprocess.TimeoutExpired(process.args, timeout, stdout, stderr) from None


def run_captured(
    command: Sequence[str], *, timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(..., capture_output=True, text=True)`` in a session of its own: on timeout
    the whole group is killed, not only the process."""
    process = spawn_captured(command, env=env, cwd=cwd)
    stdout, stderr = finish_captured(process, timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """A SIGTERM to this process unwinds like Ctrl-C, so that the cleanup of its children runs."""

    def interrupt(number: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- a process with a log file ---------------------------------------------------------------------


@dataclass
class LoggedProcess:
    """A process whose stdout and stderr go to ``log_path``."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def ensure_running(self) -> None:
        if not self.running():
            raise ProcessFailed(f"{self.name} exited with code {self.popen.returncode}:\n{self.tail()}")

    def signal(self, number: int) -> bool:
        """Send ``number`` to the process's group; False once it has exited."""
        return signal_group(self.popen, number)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: no chance to finish or acknowledge anything."""
        kill_group(self.popen)

    def stop(self, grace_seconds: float = 5.0) -> None:
        stop_group(self.popen, grace_seconds)


def start_logged(
    name: str,
    command: Sequence[str],
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = False,
) -> LoggedProcess:
    """Start ``command`` (see ``spawn``) with stdout and stderr appended to ``log_path``: a process
    restarted on the same log keeps what its predecessor wrote."""
    with log_path.open("ab") as log:
        popen = spawn(command, stdout=log, env=env, cwd=cwd, die_with_parent=die_with_parent)
    return LoggedProcess(name, popen, log_path)


def ensure_running(processes: Iterable[LoggedProcess]) -> None:
    """Raise ``ProcessFailed`` (with its log's tail) for the first of ``processes`` that exited."""
    for process in processes:
        process.ensure_running()


# -- redis-server ------------------------------------------------------------------------------------


class RedisServer:
    """A redis-server of our own on a free loopback port, with its data and ``redis.log`` in ``folder``.

    ``appendfsync`` turns the append-only file on with that policy (``always``, ``everysec``, ``no``);
    None runs without persistence (no AOF, no RDB snapshots), as the benchmarks do: their figures are
    the engine's, not the disk's. It can be killed (SIGKILL), paused (SIGSTOP), resumed and restarted
    on the same port and folder. ``port``: a free one (``free_port``) unless given.
    """

    def __init__(
        self,
        binary: str,
        folder: Path,
        *,
        appendfsync: str | None = "everysec",
        die_with_parent: bool = False,
        port: int | None = None,
    ) -> None:
        self.binary = binary
        self.folder = folder
        self.appendfsync = appendfsync
        self.die_with_parent = die_with_parent
        self.port = free_port() if port is None else port
        self.process: LoggedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.running()

    def command(self) -> list[str]:
        persistence = (
            ["--appendonly", "no"]
            if self.appendfsync is None
            else ["--appendonly", "yes", "--appendfsync", self.appendfsync]
        )
        return [
            self.binary,
            *("--port", str(self.port), "--bind", LOOPBACK, "--dir", str(self.folder)),
            *persistence,
            *("--save", "", "--protected-mode", "no"),
            # Logs to stdout, which start_logged appends to redis.log: a fatal start-up error (a bad
            # option, the port taken) lands there too, before Redis would open a log file itself.
            *("--logfile", ""),
        ]

    def start(self) -> Self:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = start_logged(
            "redis", self.command(), self.folder / "redis.log", die_with_parent=self.die_with_parent
        )
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Until it answers PING (not while it loads its data); ``ProcessFailed`` if it exits."""
        assert self.process is not None
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                with contextlib.suppress(redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError):
                    if client.ping():
                        return
                self.process.ensure_running()
                if time.monotonic() > deadline:
                    raise ProcessFailed(
                        f"redis-server on port {self.port} did not answer within {timeout:g} s"
                    )
                time.sleep(0.05)
        finally:
            client.close()

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def pause(self) -> None:
        assert self.process is not None
        self.process.pause()

    def resume(self) -> None:
        assert self.process is not None
        self.process.resume()

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self, grace_seconds: float = 10.0) -> None:
        if self.process is not None:
            self.process.stop(grace_seconds)
