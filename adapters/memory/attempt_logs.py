"""Per-attempt logs in this process (``domain.ports.AttemptLogStore``)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from domain.attempt_logs import MAX_LINES

MAX_ATTEMPTS_KEPT = 10_000
"""Attempts whose logs are kept; the oldest go first (the memory backend has no expiry)."""


class InMemoryAttemptLogStore:
    def __init__(self, max_attempts: int = MAX_ATTEMPTS_KEPT) -> None:
        self._logs: OrderedDict[tuple[str, str, int], list[str]] = OrderedDict()
        self._max_attempts = max_attempts

    async def append(self, run_id: str, node_id: str, attempt: int, lines: Sequence[str]) -> None:
        key = (run_id, node_id, attempt)
        kept = self._logs.get(key)
        if kept is None:
            kept = self._logs[key] = []
            while len(self._logs) > self._max_attempts:
                self._logs.popitem(last=False)
        kept.extend(lines[: MAX_LINES - len(kept)])

    async def read(self, run_id: str, node_id: str, attempt: int) -> list[str]:
        return list(self._logs.get((run_id, node_id, attempt), ()))
