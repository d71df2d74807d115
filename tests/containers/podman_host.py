"""Podman on this machine: installed and configured when it is not, and a thin way to call it.

There is no Docker engine here. Debian's podman runs containers as root once containers.conf sets no
default ulimits and the cgroupfs manager (the host has no systemd), with runc (crun fails on this
host's cgroups). docker-compose (Debian's, 1.29) then drives podman through its Docker-compatible
API. The packages come from Debian with apt-get, an install step like .ci/run's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import IO

# command -> the Debian package that brings it
PACKAGES = {
    "podman": "podman",
    "runc": "runc",
    "debootstrap": "debootstrap",
    "docker-compose": "docker-compose",
}
CONTAINERS_CONF = Path("/etc/containers/containers.conf")
# The settings podman needs here, by section.
REQUIRED_SETTINGS: dict[str, dict[str, object]] = {
    "containers": {"default_ulimits": []},
    "engine": {"cgroup_manager": "cgroupfs", "runtime": "runc"},
}
CONTAINERS_CONF_TEXT = """\
# Written by dag-workflow-engine's container test (tests/containers/podman_host.py): podman as root
# on a host without systemd, whose cgroups crun cannot use.
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
"""


class PodmanUnavailable(RuntimeError):
    """Podman cannot run containers on this machine (the reason says why)."""


class CommandFailed(RuntimeError):
    """A podman, apt or compose command exited non-zero; the message holds its output."""


def run(
    args: Sequence[str],
    *,
    timeout: float = 600,
    stdin: IO[bytes] | int | None = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion in its own session; raise CommandFailed with its output."""
    result = subprocess.run(  # noqa: PLW1510 - checked below, with the output in the message
        list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
        stdin=stdin,
        env=env,
        cwd=cwd,
    )
    if result.returncode != 0:
        raise CommandFailed(
            f"{' '.join(args)} exited {result.returncode}\n--- stdout\n{result.stdout[-4000:]}"
            f"\n--- stderr\n{result.stderr[-4000:]}"
        )
    return result


def podman(*args: str, timeout: float = 600) -> str:
    return run(["podman", *args], timeout=timeout).stdout


def _missing_commands() -> list[str]:
    return [command for command in PACKAGES if shutil.which(command) is None]


def _install(commands: list[str]) -> None:
    if shutil.which("apt-get") is None:
        raise PodmanUnavailable(f"{', '.join(commands)} missing and no apt-get to install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], env=env, timeout=900)
    run(["apt-get", "install", "-y", "-qq", *(PACKAGES[c] for c in commands)], env=env, timeout=1800)


def _configure() -> None:
    """Write containers.conf when there is none; accept an existing one only if it says the same."""
    if not CONTAINERS_CONF.exists():
        CONTAINERS_CONF.parent.mkdir(parents=True, exist_ok=True)
        CONTAINERS_CONF.write_text(CONTAINERS_CONF_TEXT, encoding="utf-8")
        return
    present = tomllib.loads(CONTAINERS_CONF.read_text(encoding="utf-8"))
    wrong = [
        f"[{section}] {key} = {value!r}"
        for section, settings in REQUIRED_SETTINGS.items()
        for key, value in settings.items()
        if present.get(section, {}).get(key) != value
    ]
    if wrong:
        raise PodmanUnavailable(f"{CONTAINERS_CONF} exists but lacks: {'; '.join(wrong)}")


def prepare() -> None:
    """Make podman, runc, debootstrap and docker-compose usable here, or say why they cannot be."""
    if os.geteuid() != 0:
        raise PodmanUnavailable("the container test runs podman as root (debootstrap needs root too)")
    missing = _missing_commands()
    if missing:
        _install(missing)
    _configure()
    info = podman("info", "--format", "{{.Host.OCIRuntime.Name}} {{.Host.CgroupManager}}", timeout=120)
    if info.split() != ["runc", "cgroupfs"]:
        raise PodmanUnavailable(f"podman info says runtime/cgroup manager {info.strip()!r}")
