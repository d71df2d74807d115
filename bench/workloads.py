"""The distributed benchmark's workloads W1..W5: their definitions (every node runs ``noop``) and
how many runs of each are started.

The shapes are the test suites' builders (``tests/definitions.py``, reached as the namespace package
``tests`` on the repository root, which the editable install puts on ``sys.path``), so a chain or a
diamond means the same thing in a benchmark and in a test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.dags import layered_dag, with_rules_and_conditions
from tests.definitions import chain, diamond, fan_out_in

WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6")
DEFAULT_WORKLOADS = WORKLOADS[:5]
"""What runs unless named: W6 (a map of 100,000 items) runs when named (``--only W6``)."""
CHAIN_NODES = 200
FAN_NODES = 2_000
DIAMOND_RUNS = 500
LAYERED_NODES = 20_000
MAP_ITEMS = 100_000


def map_definition(items: int) -> dict[str, Any]:
    """1 producer (``bench_items``: a list of ``items`` numbers) -> a map over it (``noop`` per item)
    -> 1 consumer reading the whole list (``bench_consume``)."""
    return {
        "name": f"map-{items}",
        "dag": {
            "nodes": [
                {"id": "src", "handler": "bench_items", "dependencies": [], "config": {"count": items}},
                {
                    "id": "each",
                    "handler": "noop",
                    "dependencies": ["src"],
                    "for_each": "{{ src.xs }}",
                    "config": {"n": "{{ item }}"},
                },
                {"id": "consume", "handler": "bench_consume", "dependencies": ["each"]},
            ]
        },
    }


def work_units(definition: dict[str, Any]) -> int:
    """Nodes, plus the items of a map workload's producer: what a run's nodes/s counts."""
    nodes = definition["dag"]["nodes"]
    return len(nodes) + sum(int(n["config"]["count"]) for n in nodes if n["handler"] == "bench_items")


class WorkloadFailed(RuntimeError):
    """A workload's runs did not all complete (in time)."""


def workload_definitions(seed: int) -> dict[str, tuple[str, Callable[[], dict[str, Any]], int]]:
    """name -> (description, definition factory, runs)."""
    return {
        "W1": (f"linear chain of {CHAIN_NODES} nodes", lambda: chain(CHAIN_NODES), 1),
        "W2": (f"fan-out/fan-in of {FAN_NODES:,} nodes", lambda: fan_out_in(FAN_NODES), 1),
        "W3": (f"{DIAMOND_RUNS} concurrent diamond runs", diamond, DIAMOND_RUNS),
        "W4": (
            f"{LAYERED_NODES:,}-node layered DAG (seed {seed})",
            lambda: layered_dag(LAYERED_NODES, seed),
            1,
        ),
        "W5": (
            f"{LAYERED_NODES:,}-node layered DAG, a third with conditions, a tenth other trigger rules",
            lambda: with_rules_and_conditions(layered_dag(LAYERED_NODES, seed), seed),
            1,
        ),
        "W6": (
            f"map over {MAP_ITEMS:,} items, one consumer of the whole list",
            lambda: map_definition(MAP_ITEMS),
            1,
        ),
    }
