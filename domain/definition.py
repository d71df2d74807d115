"""The workflow definition schema: the seed's JSON shape, plus optional per-node extensions.

Pydantic stays at this edge; everything past validation works on the compiled plan (``domain.plan``).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from domain.messages import DEFAULT_QUEUE
from domain.retry import RetryPolicy
from domain.trigger_rules import TriggerRule

NODE_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
EXTENSION_PREFIX = "x-"
QUEUE_NAME_RE = NODE_ID_RE
"""A queue's name, as a node id's: it becomes part of a stream's key."""


type ErrorType = Annotated[str, Field(min_length=1, max_length=200)]
"""The type of an error as a worker reports it: the exception's class name (``ValueError``), or one
of the engine's (``TimeoutError``, ``TemplateError``)."""


class FailurePolicy(StrEnum):
    CONTINUE = "continue"
    """Independent branches finish; the run ends FAILED when they have."""
    FAIL_FAST = "fail_fast"
    """The first node that fails for good cancels every node not finished (except ``always`` ones)."""


class DefinitionPart(BaseModel):
    """Every object of a definition: unknown keys are refused (a misspelt key must not vanish) except
    ``x-`` keys, which are free for users and dropped before validation, so never compiled.

    The refusal's message (with the nearest known key) is written by ``domain.unknown_keys``.
    """

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"patternProperties": {f"^{EXTENSION_PREFIX}": {}}}
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_extensions(cls, value: Any) -> Any:
        if isinstance(value, dict) and any(_is_extension(key) for key in value):
            return {key: item for key, item in value.items() if not _is_extension(key)}
        return value


def _is_extension(key: Any) -> bool:
    return isinstance(key, str) and key.startswith(EXTENSION_PREFIX)


class RetryPolicySchema(DefinitionPart):
    """A node's ``retry_policy`` as written; compiled to ``domain.retry.RetryPolicy``."""

    model_config = ConfigDict(frozen=True)

    max_attempts: int = Field(default=1, ge=1, le=100)
    initial_backoff_seconds: float = Field(default=1.0, ge=0, le=86_400)
    backoff_multiplier: float = Field(default=2.0, ge=1, le=100)
    max_backoff_seconds: float = Field(default=60.0, ge=0, le=86_400)
    jitter: bool = False
    retry_on: list[ErrorType] | None = Field(default=None, max_length=100)
    no_retry_on: list[ErrorType] = Field(default_factory=list, max_length=100)

    def compiled(self) -> RetryPolicy:
        return RetryPolicy(
            self.max_attempts,
            self.initial_backoff_seconds,
            self.backoff_multiplier,
            self.max_backoff_seconds,
            self.jitter,
            None if self.retry_on is None else frozenset(self.retry_on),
            frozenset(self.no_retry_on),
        )


class NodeDefinition(DefinitionPart):
    id: str
    handler: str = Field(min_length=1, max_length=200)
    dependencies: list[str] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    retry_policy: RetryPolicySchema | None = None
    timeout_seconds: float | None = Field(default=None, gt=0, le=86_400)
    heartbeat_timeout_seconds: float | None = Field(default=None, gt=0, le=86_400)
    """An attempt whose handler sends no heartbeat (``ctx.heartbeat``) for this long times out,
    even while its worker is alive (a hung handler)."""
    when: str | None = Field(default=None, min_length=1, max_length=4096)
    """A condition (``domain.conditions``): the node runs only when it holds, else ends SKIPPED."""
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS
    optional: bool = False
    """The node may fail without failing the run (its dependents still see it as failed)."""
    for_each: str | None = Field(default=None, min_length=1, max_length=4096)
    """A map (``domain.map_spec``): one template naming a list; the node runs once per item."""
    max_concurrency: int | None = Field(default=None, ge=1, le=100_000)
    """Items of a map in flight at once (default ``domain.map_spec.DEFAULT_MAX_CONCURRENCY``)."""
    tolerated_failures: int | str | None = None
    """Items of a map that may fail for good while the node still completes: a count (``3``) or a
    percentage of the items (``"10%"``); none by default."""
    queue: str | None = Field(default=None, description=f"default: {DEFAULT_QUEUE}")
    """The worker pool whose workers run it (``dag-service worker --queues``); named like node ids.
    None (left out of the source, so definitions without it keep the source they had) is the
    default queue."""
    concurrency_key: str | None = Field(default=None, min_length=1, max_length=512)
    """A pool of slots shared by every run (``domain.concurrency``); may hold templates."""
    concurrency_limit: int | None = Field(default=None, ge=1, le=100_000)
    """Attempts with the node's ``concurrency_key`` running at once, at most (default 1)."""

    @field_validator("id")
    @classmethod
    def _id_is_a_template_name(cls, value: str) -> str:
        if not NODE_ID_RE.fullmatch(value):
            raise ValueError(
                "node id must be 1 to 128 letters, digits, '_' or '-' "
                "(it is used in templates as {{ id.path }})"
            )
        return value

    @field_validator("queue")
    @classmethod
    def _queue_is_a_name(cls, value: str | None) -> str | None:
        if value is not None and not QUEUE_NAME_RE.fullmatch(value):
            raise ValueError("queue must be 1 to 128 letters, digits, '_' or '-'")
        return value

    @field_validator("config", mode="before")
    @classmethod
    def _null_config_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class DagDefinition(DefinitionPart):
    nodes: list[NodeDefinition] = Field(min_length=1)


class WorkflowDefinition(DefinitionPart):
    """Top level. Extensions are additive (new optional keys); unknown keys are refused like below."""

    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    dag: DagDefinition
    on_failure: FailurePolicy = FailurePolicy.CONTINUE
    timeout_seconds: float | None = Field(default=None, gt=0, le=30 * 86_400)
    """The run ends FAILED (``RunTimedOut``) when it has not finished this long after it started."""
    output: dict[str, Any] | None = None
    """The run's output: templates over nodes and input, rendered when the run completes."""
    input_schema: dict[str, Any] | None = None
    """JSON Schema (draft 2020-12) of a run's input; checked by ``domain.input_schema``."""
