"""The quick way through the definition schema, for definitions pydantic would accept as they are.

Validating 100,000 ``NodeDefinition`` models (and dumping them again as the plan's source) was most
of the cost of a big definition. Most nodes are *plain*: only ``id``, ``handler``, ``dependencies``
and ``config``, all of the exact JSON types. Such a node is checked here with a few type tests (the
bounds are read from ``NodeDefinition`` itself, so the schema stays the one place they are written)
and becomes a ``PlainNode``; any other node goes through ``NodeDefinition`` alone.

This path only ever *accepts*: the moment anything does not validate, ``quick_definition`` answers
None and the caller validates the whole definition with pydantic as before, so every error message
and JSON path is pydantic's, unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from domain.definition import NODE_ID_RE, NodeDefinition, RetryPolicySchema, WorkflowDefinition
from domain.trigger_rules import TriggerRule

_PLAIN_KEYS = frozenset({"id", "handler", "dependencies", "config"})


def _length_bounds(name: str) -> tuple[int, int]:
    metadata = NodeDefinition.model_fields[name].metadata
    low = next((item.min_length for item in metadata if hasattr(item, "min_length")), 0)
    high = next((item.max_length for item in metadata if hasattr(item, "max_length")), 1 << 62)
    return int(low), int(high)


_HANDLER_MIN, _HANDLER_MAX = _length_bounds("handler")
_DEFAULT_TRIGGER: TriggerRule = NodeDefinition.model_fields["trigger_rule"].default
_DEFAULT_OPTIONAL: bool = NodeDefinition.model_fields["optional"].default


@dataclass(slots=True)
class PlainNode:
    """A node as ``NodeDefinition`` would hold it, with the defaults of every optional field."""

    id: str
    handler: str
    dependencies: list[str]
    """The submitted list itself (read, never kept: the plan and its source take copies)."""
    config: dict[str, Any] = field(default_factory=dict)
    retry_policy: RetryPolicySchema | None = None
    timeout_seconds: float | None = None
    when: str | None = None
    trigger_rule: TriggerRule = _DEFAULT_TRIGGER
    optional: bool = _DEFAULT_OPTIONAL
    for_each: str | None = None
    max_concurrency: int | None = None
    tolerated_failures: int | str | None = None
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    heartbeat_timeout_seconds: float | None = None
    queue: str | None = None

    def source(self) -> dict[str, Any]:
        """What ``NodeDefinition.model_dump(mode="json", exclude_none=True)`` gives, in its order."""
        config = json.loads(json.dumps(self.config)) if self.config else {}
        return {
            "id": self.id,
            "handler": self.handler,
            "dependencies": list(self.dependencies),
            "config": config,
            "trigger_rule": self.trigger_rule.value,
            "optional": self.optional,
        }


type SchemaNode = NodeDefinition | PlainNode


@dataclass(slots=True)
class QuickDefinition:
    head: WorkflowDefinition
    """Every workflow-level field; its ``dag.nodes`` is a stand-in, the nodes are ``nodes``."""
    nodes: list[SchemaNode]

    def source(self) -> dict[str, Any]:
        """The definition as ``WorkflowDefinition.model_dump(mode="json", exclude_none=True)``."""
        source = self.head.model_dump(mode="json", exclude_none=True)
        source["dag"]["nodes"] = [
            node.source() if type(node) is PlainNode else node.model_dump(mode="json", exclude_none=True)  # type: ignore[union-attr]
            for node in self.nodes
        ]
        return source


_STAND_IN = {"id": "stand-in", "handler": "stand-in"}


def quick_definition(raw: dict[str, Any], raw_nodes: list[Any]) -> QuickDefinition | None:
    """The validated definition, or None when any part of it needs pydantic's full report."""
    dag = raw.get("dag")
    if not raw_nodes or type(dag) is not dict:
        return None
    nodes: list[SchemaNode] = []
    append = nodes.append
    for item in raw_nodes:
        node = _plain_node(item)
        if node is None:
            try:
                append(NodeDefinition.model_validate(item))
            except ValidationError:
                return None
        else:
            append(node)
    try:
        head = WorkflowDefinition.model_validate({**raw, "dag": {**dag, "nodes": [_STAND_IN]}})
    except ValidationError:
        return None
    return QuickDefinition(head, nodes)


def _plain_node(item: Any) -> PlainNode | None:
    """The node when it is plain and valid as it stands, else None (pydantic decides)."""
    if type(item) is not dict or not item.keys() <= _PLAIN_KEYS:
        return None
    node_id = item.get("id")
    handler = item.get("handler")
    if type(node_id) is not str or type(handler) is not str or not NODE_ID_RE.fullmatch(node_id):
        return None
    if not _HANDLER_MIN <= len(handler) <= _HANDLER_MAX:
        return None
    dependencies = item.get("dependencies")
    if dependencies is None:
        if "dependencies" in item:
            return None  # null is not a list: pydantic says so
        dependencies = []
    elif type(dependencies) is not list:
        return None
    else:
        for dependency in dependencies:
            if type(dependency) is not str:
                return None
    config = item.get("config")
    if config is None:
        config = {}
    elif type(config) is not dict:
        return None
    elif config:
        for key in config:
            if type(key) is not str:
                return None
        config = dict(config)  # a shallow copy, as pydantic makes (the plan keeps it)
    return PlainNode(node_id, handler, dependencies, config)
