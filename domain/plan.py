"""The compiled, immutable form of a valid definition, indexed for O(1) work per edge."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from domain.conditions import Condition
from domain.rendering import CompiledConfig
from domain.retry import RetryPolicy
from domain.trigger_rules import TriggerRule


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
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS
    condition: Condition | None = None
    optional: bool = False
    heartbeat_timeout_seconds: float | None = None
    """The longest an attempt may go without a heartbeat before it times out."""


@dataclass(frozen=True, slots=True)
class WorkflowPlan:
    name: str
    nodes: tuple[NodeSpec, ...]
    index: Mapping[str, int]
    roots: tuple[int, ...]
    source: Mapping[str, Any]
    fail_fast: bool = False
    timeout_seconds: float | None = None
    output: CompiledConfig | None = None
    """The run's output mapping, rendered when the run completes."""
    decision_reads: frozenset[str] = frozenset()
    """Roots whose data the run's own decisions read (conditions, the output mapping): node ids,
    and the workflow namespace when they read the run's input. A store keeps these at hand for the
    aggregate; other outputs only workers read."""
    default_attempt_timeout_seconds: float | None = None
    """The deadline of an attempt of a node that sets no timeout of either kind (the engine's
    setting, given to ``build_plan``): nothing holds a task forever unnoticed."""

    def node(self, node_id: str) -> NodeSpec:
        return self.nodes[self.index[node_id]]

    def __len__(self) -> int:
        return len(self.nodes)
