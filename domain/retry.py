"""A node's retry policy, as the run aggregate uses it (the schema's pydantic model stays in
``domain.definition``)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a node is attempted, how long to wait between attempts, and which errors are retried."""

    max_attempts: int = 1
    initial_backoff_seconds: float = 1.0
    backoff_multiplier: float = 2.0
    max_backoff_seconds: float = 60.0
    jitter: bool = False
    """Full jitter: the delay is drawn between 0 and the backoff ("Exponential Backoff And Jitter",
    AWS Architecture Blog), so failing nodes do not all retry at the same moment."""
    retry_on: frozenset[str] | None = None
    """Error types that are retried (None: every retryable error)."""
    no_retry_on: frozenset[str] = frozenset()
    """Error types that are never retried."""

    def retries(self, error_type: str) -> bool:
        """Whether an error of ``error_type`` (that its reporter called retryable) is retried."""
        if error_type in self.no_retry_on:
            return False
        return self.retry_on is None or error_type in self.retry_on

    def delay_before(self, attempt: int, jitter_key: str = "") -> float:
        """Seconds to wait before ``attempt`` (2 or more) after the previous one failed.

        The jitter is drawn from a hash of ``jitter_key`` and the attempt, not from a random source:
        deciding the same failure again (another backend, a retried commit) gives the same delay."""
        delay = float(
            min(
                self.initial_backoff_seconds * self.backoff_multiplier ** (attempt - 2),
                self.max_backoff_seconds,
            )
        )
        if self.jitter:
            delay *= zlib.crc32(f"{jitter_key}#{attempt}".encode()) / 2**32
        return delay


NO_RETRY = RetryPolicy()
