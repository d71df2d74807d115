"""Running the real ``dag-service`` console script as a subprocess, many at once.

The script installed next to the interpreter is the one ``uv run dag-service`` runs. Every child gets
stdin from /dev/null and an environment without ``COLUMNS``/``LINES`` or engine settings, so its
output does not depend on the terminal pytest happens to run in (rich then formats for 80 columns).

Start-up is mostly importing pydantic, rich and typer. When the environment forbids bytecode caches
(``PYTHONDONTWRITEBYTECODE``) every child would compile them again, so children may be given a
``PYTHONPYCACHEPREFIX`` outside the source tree instead; it changes nothing but start-up time.

Each command runs in a process group of its own (``bench.processes``), killed as a group when it
does not finish in time or is no longer wanted.
"""

from __future__ import annotations

import json
import signal
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.processes import (
    DAG_SERVICE,
    environment_without_settings,
    finish_captured,
    signal_group,
    spawn_captured,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = PROJECT_ROOT / "examples"
PROCESS_TIMEOUT_SECONDS = 90


def seconds(iso_time: str) -> float:
    """An ISO 8601 time of a ``--json`` document as seconds since the epoch."""
    return datetime.fromisoformat(iso_time).timestamp()


def cli_env(pycache_prefix: Path | None = None) -> dict[str, str]:
    """No engine setting, and no terminal size or colour forced: rich formats for 80 columns."""
    terminal = ("COLUMNS", "LINES", "JUPYTER_COLUMNS", "JUPYTER_LINES", "FORCE_COLOR")
    return environment_without_settings(pycache_prefix, drop=terminal)


@dataclass(frozen=True)
class CliResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        """The whole of stdout parsed as one JSON document (as ``--json`` promises)."""
        parsed: dict[str, Any] = json.loads(self.stdout)
        return parsed

    @property
    def stderr_text(self) -> str:
        """stderr with every run of whitespace made one space (rich wraps long lines at 80 columns)."""
        return " ".join(self.stderr.split())

    @property
    def stdout_text(self) -> str:
        return " ".join(self.stdout.split())

    def describe(self) -> str:
        return (
            f"dag-service {' '.join(self.args)} -> exit {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


def _popen(args: tuple[str, ...], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return spawn_captured([str(DAG_SERVICE), *args], env=env, cwd=cwd)


def _collect(args: tuple[str, ...], process: subprocess.Popen[str]) -> CliResult:
    try:
        stdout, stderr = finish_captured(process, PROCESS_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired as timed_out:
        output = f"{_text(timed_out.stdout)}\n{_text(timed_out.stderr)}"
        raise AssertionError(f"dag-service {' '.join(args)} did not finish:\n{output}") from None
    return CliResult(args, process.returncode, stdout, stderr)


def _text(written: str | bytes | None) -> str:
    """What a captured process wrote (text here; ``TimeoutExpired`` declares bytes too)."""
    return written.decode(errors="replace") if isinstance(written, bytes) else written or ""


def run_cli(
    *args: str,
    cwd: Path = PROJECT_ROOT,
    pycache_prefix: Path | None = None,
    settings: dict[str, str] | None = None,
) -> CliResult:
    """Run one command to the end; ``settings``: engine settings for it (``ENGINE_BACKEND``...)."""
    return _collect(args, _popen(args, cwd, cli_env(pycache_prefix) | (settings or {})))


class CliBatch:
    """Starts commands at once and collects each result when first asked for.

    The simulated services sleep for seconds while a process start costs about a second of CPU, so
    starting everything together keeps the suite's wall time near that of its slowest run.
    """

    def __init__(self, pycache_prefix: Path | None = None) -> None:
        self._env = cli_env(pycache_prefix)
        self._started: dict[str, tuple[tuple[str, ...], subprocess.Popen[str]]] = {}
        self._results: dict[str, CliResult] = {}

    def start(self, key: str, *args: str, cwd: Path = PROJECT_ROOT) -> None:
        assert key not in self._started, f"duplicate command key {key!r}"
        self._started[key] = (args, _popen(args, cwd, self._env))

    def __getitem__(self, key: str) -> CliResult:
        if key not in self._results:
            args, process = self._started[key]
            self._results[key] = _collect(args, process)
        return self._results[key]

    def close(self) -> None:
        for _, process in self._started.values():
            signal_group(process, signal.SIGKILL)  # nothing once it has exited
            process.communicate()
