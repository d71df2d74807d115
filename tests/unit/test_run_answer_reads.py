"""A status read of a run whose kept answer may still stand (``services.api.run_answers``) asks for
the run's revision and its status at once: both reads are out before either answers, so the
store's coalescer sends them in one pipeline (``tests/integration/test_redis_coalescer.py``) and a
poller of a run in flight makes one round trip per read. Past the spacing it asks for the revision
alone."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from domain.statuses import RunStatus
from services.api.run_answers import Answer, _revision_and_status


class GatedReads:
    """The two reads of ``WorkflowService``, each held until both have been asked for."""

    def __init__(self, *, expect: int) -> None:
        self.asked: list[str] = []
        self._expect = expect
        self._all_asked = asyncio.Event()

    async def _read(self, what: str, value: Any) -> Any:
        self.asked.append(what)
        if len(self.asked) == self._expect:
            self._all_asked.set()
        await asyncio.wait_for(self._all_asked.wait(), 5)
        return value

    async def run_revision(self, run_id: str) -> str:
        return await self._read("revision", "7:1.5")

    async def run_status(self, run_id: str) -> RunStatus:
        return await self._read("status", RunStatus.RUNNING)


def kept(rebuild_after: float) -> Answer:
    return Answer("6:1.5", None, b"{}", '"tag"', RunStatus.RUNNING, rebuild_after)


async def test_within_the_spacing_the_revision_and_the_status_are_asked_for_together() -> None:
    reads = GatedReads(expect=2)
    got = await _revision_and_status(reads, "r", kept(time.monotonic() + 60))  # type: ignore[arg-type]
    assert got == ("7:1.5", RunStatus.RUNNING)
    assert sorted(reads.asked) == ["revision", "status"]


async def test_past_the_spacing_only_the_revision_is_read() -> None:
    reads = GatedReads(expect=1)
    got = await _revision_and_status(reads, "r", kept(time.monotonic() - 1))  # type: ignore[arg-type]
    assert got == ("7:1.5", None)
    assert reads.asked == ["revision"]
