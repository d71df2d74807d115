"""A definition in Redis: its document (the validated JSON source, creation time, version, and the
default attempt deadline in force when it was registered) under its own key, and its summary in one
hash of all summaries (for listing without reading documents)."""

from __future__ import annotations

import json
from typing import Any

from domain.idempotency import IdempotentStart
from domain.limits import Limits
from domain.ports import DefinitionSummary, StoredDefinition
from domain.validation import build_plan

# Stored definitions were validated against the limits in force when they were submitted.
_STORED_LIMITS = Limits(max_nodes=10**7, max_edges=10**8, max_config_bytes=10**9, max_nesting_depth=10**4)
_DEFAULT_TIMEOUT = "default_attempt_timeout_seconds"
"""Kept with the definition: every process decides its attempts' deadlines alike, whatever its own
settings say."""


def encode_document(definition: StoredDefinition) -> str:
    document: dict[str, Any] = {
        "source": dict(definition.plan.source),
        "created_at": definition.created_at,
        "version": definition.version,
    }
    if definition.request is not None:
        document["request"] = [definition.request.key, definition.request.fingerprint]
    default_timeout = definition.plan.default_attempt_timeout_seconds
    if default_timeout is not None:
        document[_DEFAULT_TIMEOUT] = default_timeout
    return json.dumps(document)


def decode_document(definition_id: str, raw: str) -> StoredDefinition:
    """Compiles the plan again (callers cache the result: definitions never change)."""
    document = json.loads(raw)
    plan = build_plan(
        document["source"], _STORED_LIMITS, default_attempt_timeout_seconds=document.get(_DEFAULT_TIMEOUT)
    )
    request = document.get("request")
    return StoredDefinition(
        definition_id,
        plan,
        float(document["created_at"]),
        int(document.get("version", 0)),
        None if request is None else IdempotentStart(request[0], request[1]),
    )


def encode_summary(definition: StoredDefinition) -> str:
    summary = {
        "name": definition.name,
        "version": definition.version,
        "created_at": definition.created_at,
        "nodes": len(definition.plan.nodes),
    }
    return json.dumps(summary)


def decode_summary(definition_id: str, raw: str) -> DefinitionSummary:
    summary = json.loads(raw)
    return DefinitionSummary(
        definition_id,
        summary["name"],
        int(summary["version"]),
        float(summary["created_at"]),
        int(summary["nodes"]),
    )
