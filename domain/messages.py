"""What travels from the orchestrator to workers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Task:
    """Run one attempt of one node. Inputs are not inside: the worker reads them from the store."""

    run_id: str
    definition_id: str
    node_id: str
    attempt: int
    handler: str

    @property
    def idempotency_key(self) -> str:
        """Stable for this attempt; handlers use it to make their side effects repeat-safe."""
        return f"{self.run_id}:{self.node_id}:{self.attempt}"
