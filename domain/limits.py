"""Size limits applied to definitions and inputs. Services fill them from settings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Limits:
    max_nodes: int = 100_000
    max_edges: int = 1_000_000
    max_config_bytes: int = 64 * 1024
    max_nesting_depth: int = 32
    max_input_bytes: int = 1024 * 1024


DEFAULT_LIMITS = Limits()


def json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def nesting_depth(value: Any) -> int:
    """Depth of nested objects and arrays; iterative so hostile input cannot exhaust the stack."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest
