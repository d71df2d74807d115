"""A node's retry policy, as the run aggregate uses it (the schema's pydantic model stays in
``domain.definition``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a node is attempted and how long to wait between attempts."""

    max_attempts: int = 1
    initial_backoff_seconds: float = 1.0
    backoff_multiplier: float = 2.0
    max_backoff_seconds: float = 60.0

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before ``attempt`` (2 or more) after the previous one failed."""
        delay = self.initial_backoff_seconds * self.backoff_multiplier ** (attempt - 2)
        return float(min(delay, self.max_backoff_seconds))


NO_RETRY = RetryPolicy()
