"""One blocking read per stream (a Redis Cluster allows one slot per call), with a fake stream
reader: entries arrive on one stream while the others wait; a read left waiting is taken up again."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from adapters.redis.slotwise_reads import SlotwiseReads


class FakeStreams:
    """Blocking reads over queues of entries: a read returns what its stream holds, waiting up to
    its block time for the first entry (as XREADGROUP BLOCK does)."""

    def __init__(self, *names: str) -> None:
        self.entries: dict[str, asyncio.Queue[str]] = {name: asyncio.Queue() for name in names}
        self.reads: list[tuple[str, int]] = []

    async def read(self, stream: str, count: int, block_ms: int) -> list[tuple[str, list[Any]]]:
        self.reads.append((stream, block_ms))
        queue = self.entries[stream]
        try:
            first = await asyncio.wait_for(queue.get(), block_ms / 1000)
        except TimeoutError:
            return []
        taken = [first]
        while len(taken) < count and not queue.empty():
            taken.append(queue.get_nowait())
        return [(stream, [(entry, {}) for entry in taken])]


async def test_the_first_stream_with_entries_ends_the_wait_and_the_others_keep_waiting() -> None:
    streams = FakeStreams("s0", "s1", "s2")
    reads = SlotwiseReads(streams.read)
    asyncio.get_running_loop().call_later(0.05, streams.entries["s1"].put_nowait, "e1")

    started = time.monotonic()
    reply = await reads.read(["s0", "s1", "s2"], 10, 2000)

    assert reply == [("s1", [("e1", {})])]
    assert time.monotonic() - started < 1.0
    # s0 and s2 are still being read: the next receive does not start them again, and gets what
    # arrives on them.
    streams.entries["s2"].put_nowait("e2")
    assert await reads.read(["s0", "s1", "s2"], 10, 2000) == [("s2", [("e2", {})])]
    assert [stream for stream, _ in streams.reads].count("s0") == 1
    await reads.close()


async def test_nothing_waiting_returns_empty_after_the_block_time_even_after_a_shorter_read() -> None:
    streams = FakeStreams("s0", "s1")
    reads = SlotwiseReads(streams.read)
    assert await reads.read(["s0", "s1"], 10, 10) == []  # leaves no read behind, or a short one

    started = time.monotonic()
    reply = await reads.read(["s0", "s1"], 10, 300)

    assert reply == []
    assert time.monotonic() - started >= 0.29
    await reads.close()


async def test_an_entry_after_a_short_read_timed_out_is_still_found_within_the_wait() -> None:
    streams = FakeStreams("s0")
    reads = SlotwiseReads(streams.read)
    await reads.read(["s0"], 10, 10)
    asyncio.get_running_loop().call_later(0.1, streams.entries["s0"].put_nowait, "late")

    assert await reads.read(["s0"], 10, 2000) == [("s0", [("late", {})])]
    await reads.close()


async def test_a_failed_read_raises_when_no_other_stream_brought_anything() -> None:
    async def broken(stream: str, count: int, block_ms: int) -> list[tuple[str, list[Any]]]:
        raise ConnectionError(f"{stream} is down")

    reads = SlotwiseReads(broken)
    try:
        await reads.read(["s0"], 10, 100)
    except ConnectionError as error:
        assert "s0 is down" in str(error)
    else:
        raise AssertionError("the failed read was not reported")
    await reads.close()


async def test_close_ends_the_reads_still_waiting() -> None:
    streams = FakeStreams("s0", "s1")
    reads = SlotwiseReads(streams.read)
    asyncio.get_running_loop().call_later(0.02, streams.entries["s0"].put_nowait, "e")
    await reads.read(["s0", "s1"], 10, 5000)
    waiting = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]

    await reads.close()

    assert waiting and all(task.done() for task in waiting)
