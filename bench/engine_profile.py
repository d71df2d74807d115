"""Where the engine processes' time goes: py-spy samples of ``bench.redis_mode --py-spy DIR`` and the
cProfile files that ``--profile DIR`` leaves (of the engine processes, or of the API in
``bench.api_load``).

py-spy records each engine process at 250 Hz, non-blocking, one stack per sample with function
names (``--function``), as collapsed stacks in ``DIR/<role>.txt`` (loadable in speedscope). The API
benchmark samples differently (blocking, per thread): see ``bench.api_profile``.
"""

from __future__ import annotations

import pstats
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO


def engine_py_spy_command(py_spy: str, pid: int, output: Path) -> list[str]:
    return [
        py_spy,
        *("record", "--pid", str(pid), "--rate", "250", "--nonblocking", "--function"),
        *("--format", "raw", "--output", str(output)),
    ]


def summarise_profiles(folder: Path, out: TextIO) -> None:
    for profile in sorted(folder.glob("*.prof")):
        print(f"\n--- {profile} (top 15 by own time)", file=out)
        try:
            pstats.Stats(str(profile), stream=out).sort_stats("tottime").print_stats(15)
        except (OSError, TypeError, ValueError) as error:
            print(f"could not read: {error}", file=out)


IDLE_FRAME = "EpollSelector.select"
PROJECT_PACKAGES = ("services/", "adapters/", "domain/", "bench/")
LAYERS: tuple[tuple[str, Callable[[str], bool]], ...] = (  # (name, test on a leaf frame), first match wins
    ("socket writes (sendmsg)", lambda frame: "_write_sendmsg" in frame or "writelines" in frame),
    ("redis-py", lambda frame: "(redis/" in frame),
    ("hiredis/parsing", lambda frame: "hiredis" in frame),
    ("asyncio event loop", lambda frame: "(asyncio/" in frame or "(selectors.py" in frame),
    ("engine code", lambda frame: any(f"({package}" in frame for package in PROJECT_PACKAGES)),
    ("json", lambda frame: "(json/" in frame),
    ("pydantic", lambda frame: "pydantic" in frame),
)


def _layer(frame: str) -> str:
    return next((name for name, test in LAYERS if test(frame)), "other")


def summarise_samples(folder: Path, out: TextIO, top: int = 12) -> dict[str, Any]:
    """Where each engine process spent its busy samples (py-spy collapsed stacks).

    Samples whose innermost frame is the event loop's epoll wait count as idle. Busy samples are
    split by the layer of their innermost frame, and the engine's own functions are ranked by
    inclusive share (time in them and everything they call).
    """
    summary: dict[str, Any] = {}
    for path in sorted(folder.glob("*.txt")):
        own: dict[str, int] = {}
        layers: dict[str, int] = {}
        inclusive: dict[str, int] = {}
        total = idle = 0
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = stack.split(";")
            total += count
            if IDLE_FRAME in frames[-1]:
                idle += count
                continue
            own[frames[-1]] = own.get(frames[-1], 0) + count
            layer = _layer(frames[-1])
            layers[layer] = layers.get(layer, 0) + count
            for frame in set(frames):
                if (
                    any(f"({package}" in frame for package in PROJECT_PACKAGES)
                    and "services/cli" not in frame
                ):
                    inclusive[frame] = inclusive.get(frame, 0) + count
        busy = total - idle
        if not busy:
            continue

        def ranked(counts: dict[str, int], limit: int, busy: int = busy) -> dict[str, float]:
            return {key: n / busy for key, n in sorted(counts.items(), key=lambda kv: -kv[1])[:limit]}

        role = path.stem
        summary[role] = {
            "samples": total,
            "idle_share": idle / total,
            "busy_by_layer": ranked(layers, len(layers)),
            "busy_own": ranked(own, top),
            "busy_inclusive_engine": ranked(inclusive, top),
        }
        print(
            f"\n--- {role}: {total} samples at 250 Hz, {idle / total * 100:.0f}% idle in epoll; "
            "busy samples by layer of the innermost frame:",
            file=out,
        )
        print(
            "  " + ", ".join(f"{k} {v * 100:.0f}%" for k, v in summary[role]["busy_by_layer"].items()),
            file=out,
        )
        print("  busy, own time:", file=out)
        for frame, share in summary[role]["busy_own"].items():
            print(f"  {share * 100:5.1f}%  {frame}", file=out)
        print("  busy, inclusive, engine functions:", file=out)
        for frame, share in summary[role]["busy_inclusive_engine"].items():
            print(f"  {share * 100:5.1f}%  {frame}", file=out)
    return summary
