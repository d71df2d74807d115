"""The distributed benchmark's workloads W1..W4: their definitions (every node runs ``noop``) and
how many runs of each are started."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.dags import layered_dag

WORKLOADS = ("W1", "W2", "W3", "W4")
CHAIN_NODES = 200
FAN_NODES = 2_000
DIAMOND_RUNS = 500
LAYERED_NODES = 20_000


class WorkloadFailed(RuntimeError):
    """A workload's runs did not all complete (in time)."""


def _node(node_id: str, dependencies: list[str]) -> dict[str, Any]:
    return {"id": node_id, "handler": "noop", "dependencies": dependencies, "config": {}}


def chain(length: int) -> dict[str, Any]:
    nodes = [_node("n0", [])] + [_node(f"n{i}", [f"n{i - 1}"]) for i in range(1, length)]
    return {"name": f"chain-{length}", "dag": {"nodes": nodes}}


def fan_out_in(total: int) -> dict[str, Any]:
    middle = [f"p{i}" for i in range(total - 2)]
    nodes = [_node("root", []), *(_node(p, ["root"]) for p in middle), _node("sink", middle)]
    return {"name": f"fan-{total}", "dag": {"nodes": nodes}}


def diamond() -> dict[str, Any]:
    nodes = [_node("a", []), _node("b", ["a"]), _node("c", ["a"]), _node("d", ["b", "c"])]
    return {"name": "diamond", "dag": {"nodes": nodes}}


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
    }
