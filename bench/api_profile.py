"""Where the API process's time goes, from py-spy samples (``bench.api_load --py-spy DIR``).

py-spy records the API with ``--threads --function`` (one stack per thread and sample, frames
``name (path:line)``), at 100 Hz and *blocking* (it pauses the process for each sample, about 1 %
overhead, so that stacks are consistent). Only the event loop's thread serves requests: its samples
are sorted into the layers below by the first test that matches the whole stack, so that, e.g., a
socket write made by redis-py inside a run start counts as the run start's Redis work. Samples whose
innermost frame waits in epoll are idle. The thread-pool threads (FastAPI runs ``def`` dependencies
there) are reported apart: busy samples there cost the GIL, waking them costs the loop.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

type Test = Callable[[str], bool]

MAIN_THREAD = "MainThread"
IDLE_LEAVES = ("EpollSelector.select", "select (selectors.py", "Condition.wait", "Event.wait")

LAYERS: tuple[tuple[str, Test], ...] = (
    ("run start: RedisRunRepository.add (redis-py, socket)", lambda s: "RedisRunRepository.add" in s),
    (
        "run start: WorkflowService.start, rest (input check, Run.create)",
        lambda s: "WorkflowService.start" in s,
    ),
    ("status: RedisRunRepository.get (redis-py, socket, Run)", lambda s: "RedisRunRepository.get" in s),
    (
        "status: run_view + status_of (read model, pydantic views)",
        lambda s: "status_of" in s or "run_view (" in s,
    ),
    ("routes: the rest (body read and parse, ...)", lambda s: "services/api/seed_routes.py" in s),
    ("FastAPI: solve_dependencies (def dependencies -> thread pool)", lambda s: "solve_dependencies" in s),
    ("FastAPI: response validation and serialisation", lambda s: "serialize_response" in s),
    (
        "FastAPI/Starlette: routing, middleware, request and response objects",
        lambda s: "fastapi/" in s or "starlette/" in s,
    ),
    ("uvicorn: HTTP parsing and writes", lambda s: "uvicorn/" in s),
    ("redis-py outside a request (replies, connections)", lambda s: "redis/" in s),
    ("asyncio event loop (callbacks, timers, thread wake-ups)", lambda s: True),
)


def py_spy_path(module: str) -> str:
    """py-spy's path, or a RuntimeError that says how to run ``module`` with it."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise RuntimeError(f"--py-spy needs py-spy on PATH: uv run --with py-spy python -m {module}")
    return py_spy


def py_spy_command(py_spy: str, pid: int, output: Path) -> list[str]:
    return [
        py_spy,
        *("record", "--pid", str(pid), "--rate", "100", "--threads", "--function"),
        *("--format", "raw", "--output", str(output)),
    ]


def _samples(path: Path) -> list[tuple[list[str], int]]:
    found = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            found.append((stack.split(";"), int(count)))
    return found


def summarise_api_samples(path: Path, say: Callable[[str], None], top: int = 12) -> dict[str, float]:
    """Print the event loop thread's busy samples by layer, its own-time hot spots, and the thread
    pool's busy share; return the layers' shares."""
    if not path.exists():
        say(f"no samples in {path}")
        return {}
    layers: dict[str, int] = {}
    own: dict[str, int] = {}
    main_total = main_idle = pool_total = pool_busy = 0
    for frames, count in _samples(path):
        idle = any(marker in frames[-1] for marker in IDLE_LEAVES)
        if MAIN_THREAD not in frames[0]:
            pool_total += count
            pool_busy += 0 if idle else count
            continue
        main_total += count
        if idle:
            main_idle += count
            continue
        stack = ";".join(frames[1:])
        name = next(name for name, test in LAYERS if test(stack))
        layers[name] = layers.get(name, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count
    busy = main_total - main_idle
    if not busy:
        say(f"no busy samples of the API's event loop in {path}")
        return {}
    say(
        f"\n--- API event loop thread: {main_total} samples, {main_idle / main_total * 100:.0f}% idle "
        f"in epoll; its busy samples by layer:"
    )
    shares = {name: n / busy for name, n in sorted(layers.items(), key=lambda kv: -kv[1])}
    for name, share in shares.items():
        say(f"  {share * 100:5.1f}%  {name}")
    say("  hottest functions by own time:")
    for frame, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        say(f"  {n / busy * 100:5.1f}%  {frame}")
    if pool_total:
        say(
            f"  thread-pool threads: {pool_busy} busy samples ({pool_busy / busy * 100:.0f}% of the loop's "
            "busy samples), the rest idle"
        )
    return shares
