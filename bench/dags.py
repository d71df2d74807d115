"""Seeded random layered DAGs for the benchmarks.

Shape: ``nodes`` nodes named ``n0 .. n{nodes-1}`` laid out in layers of ``width`` nodes (the last
layer may be shorter). The default width is a fixed ``DEFAULT_WIDTH`` (100), not a function of the
size, so that every size has the same local shape (same fan-in, fan-out and parallelism per layer)
and only the number of layers grows: 1,000 nodes are 10 layers, 100,000 nodes are 1,000 layers.
That makes time per node comparable across sizes.

Every node outside the first layer has 1 to 3 distinct parents (uniformly 1, 2 or 3). The first
parent always comes from the immediately previous layer, so a node in layer k sits exactly at depth
k; the others come from any of the previous ``LOOKBACK`` layers (default 2). Every node runs the
``noop`` handler with an empty config. Generation is O(nodes) and takes well under a second for
100,000 nodes.
"""

from __future__ import annotations

import random
from typing import Any

DEFAULT_WIDTH = 100
LOOKBACK = 2
HANDLER = "noop"


def layered_dag(
    nodes: int, seed: int, width: int | None = None, *, lookback: int = LOOKBACK, handler: str = HANDLER
) -> dict[str, Any]:
    """A workflow definition dict in the seed shape: ``{"name", "dag": {"nodes": [...]}}``."""
    if nodes < 1:
        raise ValueError("a workflow needs at least one node")
    width = DEFAULT_WIDTH if width is None else width
    if width < 1 or lookback < 1:
        raise ValueError("width and lookback must be at least 1")
    rng = random.Random(seed)
    rand = rng.random  # int(rand() * k) is a uniform pick in range(k), several times faster than randrange
    ids = [f"n{i}" for i in range(nodes)]
    result: list[dict[str, Any]] = [
        {"id": ids[i], "handler": handler, "dependencies": [], "config": {}} for i in range(min(width, nodes))
    ]
    append = result.append
    for i in range(width, nodes):
        layer = i // width
        layer_start = layer * width
        # the first parent: the immediately previous layer, which is always full
        first = layer_start - width + int(rand() * width)
        extra = int(rand() * 3)  # 0, 1 or 2 more parents
        if extra:
            window_start = max(0, layer - lookback) * width
            window = layer_start - window_start  # nodes in the lookback layers
            chosen = {first}
            target = min(extra + 1, window)
            while len(chosen) < target:
                chosen.add(window_start + int(rand() * window))
            chosen.remove(first)
            dependencies = [ids[first], *(ids[p] for p in sorted(chosen))]
        else:
            dependencies = [ids[first]]
        append({"id": ids[i], "handler": handler, "dependencies": dependencies, "config": {}})
    return {
        "name": f"layered-{nodes}-w{width}-s{seed}",
        "dag": {"nodes": result},
    }


def edge_count(definition: dict[str, Any]) -> int:
    return sum(len(node["dependencies"]) for node in definition["dag"]["nodes"])


CONDITION_SHARE = 1 / 3
RULE_SHARE = 1 / 10
FALSE_TAIL_LAYERS = 5
"""Only in the last layers may a condition be false: a false condition early would skip most of the
DAG under the default rule, and the workload would measure skips instead of runs."""
OTHER_RULES = ("all_done", "none_failed", "one_success", "none_failed_min_one_success")


def with_rules_and_conditions(
    definition: dict[str, Any], seed: int, width: int = DEFAULT_WIDTH
) -> dict[str, Any]:
    """``definition`` (a ``layered_dag``) with a condition on a third of its non-root nodes (over
    their first parent's output: true, except for a fifth of those in the last
    ``FALSE_TAIL_LAYERS`` layers) and a trigger rule other than the default on a tenth of them."""
    rng = random.Random(seed * 7919 + 1)
    nodes = definition["dag"]["nodes"]
    tail_start = max(0, len(nodes) - FALSE_TAIL_LAYERS * width)
    for position, node in enumerate(nodes):
        if not node["dependencies"]:
            continue
        first = node["dependencies"][0]
        if rng.random() < CONDITION_SHARE:
            false = position >= tail_start and rng.random() < 0.2
            # noop's output is {}: empty, so falsy in a condition.
            node["when"] = f"{{{{ {first} }}}}" if false else f"not {{{{ {first} }}}}"
        if rng.random() < RULE_SHARE:
            node["trigger_rule"] = OTHER_RULES[int(rng.random() * len(OTHER_RULES))]
    definition["name"] += "-rules"
    return definition
