"""Start-up time of ``dag-service`` commands: how long a client command takes before it can do
anything, and what the engine commands cost beside it.

Each command is started ``--repeat`` times as a fresh process (the console script ``uv run
dag-service`` runs), against an API address where nothing listens, so the figure is start-up plus
one refused connection: the command prints ``cannot reach the API`` and exits 3. Bytecode is kept
in a folder of this run (``PYTHONPYCACHEPREFIX``), filled by one warm-up call, so that the figure is
a second call's, as a user sees it, even where ``PYTHONDONTWRITEBYTECODE`` is set.

    uv run python -m bench.cli_startup                 # status, submit, --help, validate; median of 9
    uv run python -m bench.cli_startup --repeat 21 --json

Target: ``status`` (a client command) under 0.5 s wall, median.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.processes import (
    DAG_SERVICE,
    environment_without_settings,
    finish_captured,
    free_port,
    spawn_captured,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "scenario_a_linear.json"
TARGET_SECONDS = 0.5


def commands(api_url: str) -> dict[str, tuple[list[str], int]]:
    """Name -> (arguments, the exit code it must end with)."""
    return {
        "status": (["status", "0123456789abcdef", "--api-url", api_url], 3),
        "submit": (["submit", str(EXAMPLE), "--api-url", api_url], 3),
        "--help": (["--help"], 0),
        "validate": (["validate", str(EXAMPLE)], 0),
    }


def timed(args: list[str], expected: int, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one call."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = spawn_captured([str(DAG_SERVICE), *args], env=env)
    stdout, stderr = finish_captured(process, 60)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != expected:
        raise SystemExit(f"dag-service {' '.join(args)} exited {process.returncode}:\n{stdout}{stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    options = parser.parse_args()
    api_url = f"http://127.0.0.1:{free_port()}/api"
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="dag-cli-startup-") as cache:
        env = environment_without_settings(Path(cache))
        load_before = os.getloadavg()[0]
        for name, (args, expected) in commands(api_url).items():
            timed(args, expected, env)  # warm-up: fills the bytecode cache
            runs = [timed(args, expected, env) for _ in range(options.repeat)]
            walls, cpus = [wall for wall, _ in runs], [cpu for _, cpu in runs]
            figures[name] = {
                "median_s": statistics.median(walls),
                "min_s": min(walls),
                "max_s": max(walls),
                "cpu_median_s": statistics.median(cpus),
            }
        load_after = os.getloadavg()[0]
    if options.json:
        print(json.dumps({"figures": figures, "load": [load_before, load_after]}))
        return
    print(f"dag-service start-up, median of {options.repeat} (load {load_before:.2f} -> {load_after:.2f})")
    print(f"{'command':<10} {'median s':>9} {'min-max s':>13} {'cpu s':>7}")
    for name, figure in figures.items():
        span = f"{figure['min_s']:.2f}-{figure['max_s']:.2f}"
        print(f"{name:<10} {figure['median_s']:>9.3f} {span:>13} {figure['cpu_median_s']:>7.3f}")
    status = figures["status"]["median_s"]
    verdict = "PASS" if status < TARGET_SECONDS else "FAIL"
    cpu = figures["status"]["cpu_median_s"]
    print(f"target: status under {TARGET_SECONDS} s: {verdict} ({status:.3f} s; cpu {cpu:.3f} s)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
