"""What travels from the orchestrator to workers."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_QUEUE = "default"
"""The worker pool of a node that names none, and the one a worker serves unless told otherwise."""


@dataclass(frozen=True, slots=True)
class Task:
    """Run one attempt of one node. Inputs are not inside: the worker reads them from the store."""

    run_id: str
    definition_id: str
    node_id: str
    attempt: int
    handler: str
    queue: str = DEFAULT_QUEUE
    """The worker pool it goes to: only workers serving this queue receive it."""

    @property
    def idempotency_key(self) -> str:
        """Stable for this attempt; handlers use it to make their side effects repeat-safe."""
        return f"{self.run_id}:{self.node_id}:{self.attempt}"
