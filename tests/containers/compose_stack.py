"""docker-compose.yml brought up on podman, unchanged, and everything it made removed afterwards.

docker-compose (1.29, Debian's) talks to ``podman system service`` on a socket of the test's own.
Podman schedules health checks with systemd timers, and this host has no systemd, so a thread here
runs each container's own check (``podman healthcheck run``) at the interval the compose file gives,
which is what Docker's daemon would do; ``depends_on: condition: service_healthy`` then works as in
Docker. The project has a fixed name, so that a run killed before its teardown is cleaned up by the
next one.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from podman_host import CommandFailed, podman, run
from standins import COMPOSE, ROOT

from services.settings import Settings

PROJECT = "dagtest-containers"
PROJECT_LABEL = f"com.docker.compose.project={PROJECT}"
NETWORK = f"{PROJECT}_default"
# Containers the tests run from the image beside the compose services (podman run).
ONE_OFF_LABEL = f"{PROJECT}.one-off=true"
API_URL = "http://127.0.0.1:8000"  # the port docker-compose.yml publishes
# Settings the compose file reads from the shell (${NAME:-default}): a short visibility timeout, so a
# killed worker's task is redelivered in seconds; one task per worker at a time, so that work visibly
# spreads over every worker.
COMPOSE_SETTINGS = {"VISIBILITY_TIMEOUT_SECONDS": "5", "WORKER_CONCURRENCY": "1", "LOG_LEVEL": "INFO"}


class StackError(RuntimeError):
    """The stack did not reach the state a test waits for; the message says which and why."""


def wait_for[T](what: str, probe: Callable[[], T | None], within: float, every: float = 0.5) -> T:
    """Poll ``probe`` until it returns something other than None, or fail naming ``what``."""
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise StackError(f"timed out after {within:.0f} s waiting for {what}")
        time.sleep(every)


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    service: str
    state: str

    @property
    def hostname(self) -> str:
        """Docker's and podman's default hostname of a container: its id's first 12 characters."""
        return self.id[:12]


def containers(service: str | None = None, *, all_states: bool = False) -> list[Container]:
    args = ["ps", "--format", "json", "--filter", f"label={PROJECT_LABEL}"]
    if service is not None:
        args += ["--filter", f"label=com.docker.compose.service={service}"]
    if all_states:
        args.append("--all")
    listed: list[dict[str, Any]] = json.loads(podman(*args, timeout=60) or "[]")
    return sorted(
        (
            Container(
                id=entry["Id"],
                name=entry["Names"][0],
                service=entry["Labels"]["com.docker.compose.service"],
                state=entry["State"],
            )
            for entry in listed
        ),
        key=lambda container: container.name,
    )


def _passed_since(container: Container, since: float) -> str:
    """'passed' if the running container's health log has a successful check that began after
    ``since`` (a Unix time); else its state or health status, for the error message."""
    state = json.loads(podman("inspect", "--format", "{{json .State}}", container.id, timeout=60))
    if state.get("Status") != "running":
        return str(state.get("Status"))
    health = state.get("Health") or state.get("Healthcheck") or {}
    for entry in health.get("Log") or []:
        began = datetime.fromisoformat(entry["Start"].replace("Z", "+00:00")).timestamp()
        if entry.get("ExitCode") == 0 and began >= since:
            return "passed"
    return str(health.get("Status"))


DOCKER_DEFAULT_INTERVAL_NS = 30_000_000_000  # Docker's interval where a check names none


class HealthDriver(threading.Thread):
    """Runs every running container's health check at its interval, as Docker's daemon would."""

    def __init__(self, log: Path) -> None:
        super().__init__(name="podman-health-checks", daemon=True)
        self._log = log
        self._stop_event = threading.Event()
        self._intervals: dict[str, float] = {}
        self._due: dict[str, float] = {}
        self._checks: dict[str, threading.Thread] = {}

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)

    def _interval(self, container: Container) -> float:
        if container.id not in self._intervals:
            config = podman("inspect", "--format", "{{json .Config.Healthcheck}}", container.id, timeout=60)
            nanoseconds = (json.loads(config) or {}).get("Interval") or DOCKER_DEFAULT_INTERVAL_NS
            self._intervals[container.id] = nanoseconds / 1e9
        return self._intervals[container.id]

    def run(self) -> None:
        while not self._stop_event.wait(1.0):
            try:
                running = [c for c in containers() if c.state == "running"]
                for container in running:
                    now = time.monotonic()
                    due = self._due.setdefault(container.id, now + self._interval(container))
                    busy = container.id in self._checks and self._checks[container.id].is_alive()
                    if now >= due and not busy:
                        # Checks run side by side, each container's one at a time, as Docker's do.
                        self._due[container.id] = now + self._interval(container)
                        check = threading.Thread(target=self._check, args=(container,), daemon=True)
                        self._checks[container.id] = check
                        check.start()
            except (CommandFailed, subprocess.TimeoutExpired, json.JSONDecodeError):
                continue  # a container came or went between two calls: look again next round
        for check in self._checks.values():
            check.join(timeout=60)

    def _check(self, container: Container) -> None:
        """The check's verdict is recorded by podman in the container's state; the log says when."""
        started = time.monotonic()
        try:
            result = subprocess.run(
                ["podman", "healthcheck", "run", container.id],
                capture_output=True,
                text=True,
                timeout=60,
                start_new_session=True,
                check=False,
            )
            verdict = result.stdout.strip() or "healthy"
        except subprocess.TimeoutExpired:
            verdict = "podman healthcheck run timed out"  # counts as no check; the next one comes
        took = time.monotonic() - started
        with self._log.open("a", encoding="utf-8") as log:
            log.write(f"{time.strftime('%H:%M:%S')} {container.name}: {verdict} in {took:.1f} s\n")


def image_ids() -> set[str]:
    return set(podman("images", "--all", "--quiet", "--no-trunc", timeout=60).split())


def engine_settings(container: Container) -> dict[str, str]:
    """The engine settings (the Settings fields' variables) a container of the stack was given."""
    names = {name.upper() for name in Settings.model_fields}
    env = json.loads(podman("inspect", "--format", "{{json .Config.Env}}", container.id, timeout=60))
    pairs = (entry.split("=", 1) for entry in env)
    return {name: value for name, value in pairs if name in names}


def remove_project_resources() -> None:
    """Containers, volumes and the network of the project, whatever compose left (or a killed run)."""
    one_offs = podman(
        "ps", "--all", "--quiet", "--no-trunc", "--filter", f"label={ONE_OFF_LABEL}", timeout=60
    )
    ids = [container.id for container in containers(all_states=True)] + one_offs.split()
    if ids:
        podman("rm", "--force", "--volumes", "--time", "5", *ids, timeout=300)
    volumes = podman("volume", "ls", "--quiet", "--filter", f"label={PROJECT_LABEL}", timeout=60).split()
    if volumes:
        podman("volume", "rm", "--force", *volumes, timeout=120)
    networks = podman("network", "ls", "--quiet", "--filter", f"label={PROJECT_LABEL}", timeout=60).split()
    if networks:
        podman("network", "rm", "--force", *networks, timeout=120)


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Stack:
    """docker-compose driving podman through a socket in ``folder``."""

    folder: Path
    log: Callable[[str], None] = print
    _service: subprocess.Popen[bytes] | None = None
    _health: HealthDriver = field(init=False)
    _images_before: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._health = HealthDriver(self.folder / "health-checks.log")

    @property
    def socket_path(self) -> Path:
        return self.folder / "podman.sock"

    def environment(self) -> dict[str, str]:
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
        return {
            **{name: os.environ[name] for name in keep if name in os.environ},
            **COMPOSE_SETTINGS,
            "DOCKER_HOST": f"unix://{self.socket_path}",
            # docker-compose builds through the API (podman runs the build), not through a docker CLI.
            "COMPOSE_DOCKER_CLI_BUILD": "0",
            "DOCKER_BUILDKIT": "0",
        }

    def compose(self, *args: str, timeout: float = 300) -> str:
        command = ["docker-compose", "--project-name", PROJECT, "--file", str(COMPOSE), *args]
        return run(command, env=self.environment(), cwd=ROOT, timeout=timeout).stdout

    def start(self, *, build_timeout: float) -> None:
        remove_project_resources()
        if port_in_use(8000):
            raise StackError("127.0.0.1:8000 is taken; docker-compose.yml publishes the API there")
        self._images_before = image_ids()
        self._service = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{self.socket_path}"],
            stdout=(self.folder / "podman-service.log").open("wb"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for("the podman API socket", lambda: True if self.socket_path.exists() else None, 30)
        self._health.start()
        started = time.monotonic()
        self.compose("build", timeout=build_timeout)
        self.log(f"image built in {time.monotonic() - started:.0f} s")
        self.compose("up", "--detach", "--no-build", timeout=300)
        self.log(f"compose up returned {time.monotonic() - started:.0f} s after the build began")
        self.wait_healthy(within=180)

    def wait_healthy(self, within: float, service: str | None = None) -> list[Container]:
        """Until every running container (of ``service``) has passed its health check since this call.

        Passed, not healthy all at once: on this shared 2-core machine a check (about 1.5 s of CPU
        for ``dag-service check``) can overrun its 10 s timeout under load, and three overruns in a
        row mark a container unhealthy for a while, as Docker would too.
        """
        since = time.time()
        seen: dict[str, str] = {}

        def all_passed() -> list[Container] | None:
            now = containers(service)
            for container in now:
                if seen.get(container.name) != "passed":
                    seen[container.name] = _passed_since(container, since)
            names = {container.name for container in now}
            return now if now and all(seen.get(name) == "passed" for name in names) else None

        try:
            return wait_for(
                f"every {service or 'container'} of the stack to pass its health check",
                all_passed,
                within,
                1.0,
            )
        except StackError as error:
            raise StackError(
                f"{error}; last seen: {seen}; health driver alive: {self._health.is_alive()}"
            ) from None

    def stop(self) -> None:
        """Everything the stack made goes, whatever failed before; the stand-in base images stay."""
        errors: list[str] = []
        try:
            if self._service is not None and self._service.poll() is None:
                self.compose("down", "--volumes", "--remove-orphans", "--timeout", "10", timeout=300)
        except (CommandFailed, subprocess.TimeoutExpired) as error:
            errors.append(f"docker-compose down: {error}")
        if self._health.is_alive():
            self._health.stop()
        try:
            remove_project_resources()
            made = image_ids() - self._images_before
            for image in sorted(made):
                # Removing the tagged image removes its untagged parents too; those are then gone.
                subprocess.run(
                    ["podman", "rmi", "--force", image], capture_output=True, timeout=120, check=False
                )
            left = image_ids() - self._images_before
            if left:
                errors.append(f"images left behind: {sorted(left)}")
        finally:
            if self._service is not None and self._service.poll() is None:
                os.killpg(self._service.pid, signal.SIGTERM)
                try:
                    self._service.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(self._service.pid, signal.SIGKILL)
                    self._service.wait(timeout=20)
        if errors:
            raise StackError("; ".join(errors))
