"""Attempt signals in this process (``domain.ports.AttemptSignals``): the workers of the embedded
backend share the orchestrator's process, so a set is the signal."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Sequence

from domain.ports import AttemptRef

MAX_SIGNALS_KEPT = 100_000
"""Signals kept; the oldest go first (the memory backend has no expiry)."""


class InMemoryAttemptSignals:
    def __init__(self, max_kept: int = MAX_SIGNALS_KEPT) -> None:
        self._cancelled: OrderedDict[AttemptRef, None] = OrderedDict()
        self._max_kept = max_kept

    async def cancel(self, run_id: str, attempts: Sequence[tuple[str, int]]) -> None:
        for node_id, attempt in attempts:
            self._cancelled[(run_id, node_id, attempt)] = None
        while len(self._cancelled) > self._max_kept:
            self._cancelled.popitem(last=False)

    async def cancelled(self, attempts: Collection[AttemptRef]) -> set[AttemptRef]:
        return {attempt for attempt in attempts if attempt in self._cancelled}
