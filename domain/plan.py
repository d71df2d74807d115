"""The compiled, immutable form of a valid definition, indexed for O(1) work per edge."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from domain.concurrency import ConcurrencySpec
from domain.conditions import Condition
from domain.map_spec import MapSpec
from domain.messages import DEFAULT_QUEUE
from domain.rendering import CompiledConfig
from domain.retry import RetryPolicy
from domain.trigger_rules import TriggerRule

DEADLINE_GRACE_SECONDS = 5.0
"""The orchestrator's deadline for an attempt is its node's timeout plus this: the worker enforces
the timeout itself and reports first; the deadline catches a worker that died or hangs."""


@dataclass(slots=True)
class NodeSpec:
    """One node of a compiled plan. Immutable by convention, like the plan (not frozen: a plan of
    100,000 nodes builds 100,000 of them, and a frozen dataclass's constructor costs about twice)."""

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
    map: MapSpec | None = None
    """Set for a map node (``for_each``): it runs once per item of a list (``domain.map_spec``)."""
    queue: str = DEFAULT_QUEUE
    """The worker pool its tasks go to (``DEFAULT_QUEUE`` unless named)."""
    concurrency: ConcurrencySpec | None = None
    """Set when the node has a ``concurrency_key`` (``domain.concurrency``)."""


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
    map_sources: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    """Root (node id, or the workflow namespace) -> the map nodes whose list it holds: the run
    reads that output once, when it is recorded, to count the items (it keeps only the count)."""

    @property
    def recorded_reads(self) -> frozenset[str]:
        """Roots whose data the aggregate reads as it is recorded: ``decision_reads``, and the roots
        maps count their items in (``map_sources``: read once, not kept)."""
        return self.decision_reads | self.map_sources.keys()

    def node(self, node_id: str) -> NodeSpec:
        return self.nodes[self.index[node_id]]

    def __len__(self) -> int:
        return len(self.nodes)
