"""How long ``domain.validation.build_plan`` takes on big definitions, A/B against another checkout.

Each measurement is a fresh process that generates ``bench.dags.layered_dag(N)``, then
times one ``build_plan`` of it (with the registry's handler names given, as the API validates) and
prints the seconds. The rounds alternate this checkout (A) and the baseline (B, e.g. the main
checkout), switching which goes first each round, so that both see the same machine load; the
report gives the median and the range of each side.

    uv run python -m bench.validation_speed                               # A only
    uv run python -m bench.validation_speed --baseline /work/main --rounds 7
    uv run python -m bench.validation_speed --one 100000                  # one figure

Target: 100,000 nodes in under 1 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 1.0
SEED = 7
HANDLERS = frozenset({"noop"})


def measure_in(checkout: Path, nodes: int) -> float:
    """One fresh process whose ``domain`` and ``bench.dags`` come from ``checkout``; the measuring
    code is this file's (``_CHILD``), the same for both sides, as the baseline may lack this file."""
    code = _CHILD.format(checkout=str(checkout), nodes=nodes, seed=SEED, handlers=sorted(HANDLERS))
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=checkout, capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


_CHILD = """
import sys, time
sys.path.insert(0, {checkout!r})
from bench.dags import layered_dag
from domain.limits import Limits
from domain.validation import build_plan
definition = layered_dag({nodes}, {seed})
limits = Limits(max_nodes=max({nodes}, 100_000), max_edges=max(4 * {nodes}, 1_000_000))
started = time.perf_counter()
plan = build_plan(definition, limits, frozenset({handlers!r}))
elapsed = time.perf_counter() - started
assert len(plan.nodes) == {nodes}
print(elapsed)
"""


def report(name: str, figures: list[float]) -> str:
    return (
        f"{name}: median {statistics.median(figures):.3f} s, "
        f"range {min(figures):.3f}-{max(figures):.3f} s ({len(figures)} runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="another checkout (B), e.g. /work/main")
    parser.add_argument("--one", type=int, help="measure one size (this checkout) and print it")
    args = parser.parse_args()
    if args.one:
        print(f"{measure_in(HERE, args.one):.3f}")
        return
    sides = {"A (this checkout)": HERE}
    if args.baseline is not None:
        sides["B (" + str(args.baseline) + ")"] = args.baseline.resolve()
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; {os.cpu_count()} cores")
    for nodes in (int(size) for size in args.sizes.split(",")):
        figures: dict[str, list[float]] = {name: [] for name in sides}
        for round_number in range(args.rounds):
            order = list(sides.items())
            if round_number % 2:
                order.reverse()
            for name, checkout in order:
                figures[name].append(measure_in(checkout, nodes))
        print(f"{nodes:,} nodes")
        for name, values in figures.items():
            print("  " + report(name, values))
        if len(sides) == 2:
            a, b = (statistics.median(values) for values in figures.values())
            print(f"  A/B of the medians: {a / b:.2f}x ({b / a:.1f} times faster)")
        if nodes >= 100_000:
            best = statistics.median(figures["A (this checkout)"])
            print(f"  target under {TARGET_SECONDS:g} s: {'met' if best < TARGET_SECONDS else 'NOT met'}")
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")


if __name__ == "__main__":
    main()
