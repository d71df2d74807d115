"""The compiled, immutable form of a valid definition, indexed for O(1) work per edge."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from domain.rendering import CompiledConfig
from domain.retry import RetryPolicy


@dataclass(frozen=True, slots=True)
class NodeSpec:
    id: str
    index: int
    handler: str
    parents: tuple[int, ...]
    children: tuple[int, ...]
    parent_ids: tuple[str, ...]
    config: CompiledConfig
    retry: RetryPolicy
    timeout_seconds: float | None
    reads: frozenset[str]
    """Roots whose data an attempt needs: parents, template roots and the workflow namespace."""


@dataclass(frozen=True, slots=True)
class WorkflowPlan:
    name: str
    nodes: tuple[NodeSpec, ...]
    index: Mapping[str, int]
    roots: tuple[int, ...]
    source: Mapping[str, Any]

    def node(self, node_id: str) -> NodeSpec:
        return self.nodes[self.index[node_id]]

    def __len__(self) -> int:
        return len(self.nodes)
