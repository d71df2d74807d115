"""Contract of ``AttemptSignals``: an attempt marked to be stopped is reported as such to whoever
asks about it (another process on Redis), and only that attempt."""

from __future__ import annotations

import uuid

from contract_support import Backend


async def test_a_cancelled_attempt_is_reported_and_no_other(backend: Backend) -> None:
    run, other_run = f"run-{uuid.uuid4().hex[:8]}", f"run-{uuid.uuid4().hex[:8]}"
    asked = {(run, "a", 1), (run, "a", 2), (run, "b", 1), (other_run, "a", 1)}
    assert await backend.signals.cancelled(asked) == set()

    await backend.signals.cancel(run, [("a", 1), ("b", 1)])
    await backend.signals.cancel(run, [("a", 1)])  # told twice: the same

    elsewhere = await backend.connect()  # a worker's own ports
    assert await elsewhere.signals.cancelled(asked) == {(run, "a", 1), (run, "b", 1)}
    assert await elsewhere.signals.cancelled([]) == set()
