"""The soak: runs of mixed shapes started at a steady pace while a chaos loop SIGKILLs a random
worker or orchestrator every few seconds (and starts a replacement at once). Then the invariants
are checked over every run: all final with the status its shape implies, every node completed
once, every attempt dispatched once, children after parents, every output from a recorded handler
execution, nothing pending at the end.

Short by default (CI); ``SOAK_RUNS=500`` (and optionally ``SOAK_RATE`` runs/s, ``SOAK_SEED``) for
the long one: ``SOAK_RUNS=500 uv run pytest tests/faults -m soak``.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from distributed_support import workflow
from fault_support import FIGURES, FaultCluster, chaos_pick, fault_node
from invariants import check_invariants

SOAK_RUNS = int(os.environ.get("SOAK_RUNS", "60"))
SOAK_RATE = float(os.environ.get("SOAK_RATE", "4"))  # runs started per second
SOAK_SEED = int(os.environ.get("SOAK_SEED", str(random.randrange(1_000_000))))
CHAOS_PAUSE_SECONDS = (1.5, 3.0)
VISIBILITY = 2.0

LEAVES = [f"leaf_{number}" for number in range(8)]
# Handlers take tenths of a second, so that a kill usually catches some work in flight.
SHAPES: dict[str, tuple[dict[str, Any], str]] = {
    "chain": (
        workflow(
            "chain",
            [
                fault_node("c1", sleep=0.1),
                *(fault_node(f"c{n}", [f"c{n - 1}"], sleep=0.1) for n in range(2, 6)),
            ],
        ),
        "COMPLETED",
    ),
    "diamond": (
        workflow(
            "diamond",
            [
                fault_node("top", sleep=0.1),
                fault_node("left", ["top"], sleep=0.3),
                fault_node("right", ["top"], sleep=0.1),
                fault_node("bottom", ["left", "right"]),
            ],
        ),
        "COMPLETED",
    ),
    "fan": (
        workflow(
            "fan",
            [
                fault_node("root"),
                *(fault_node(leaf, ["root"], sleep=0.3) for leaf in LEAVES),
                fault_node("join", LEAVES),
            ],
        ),
        "COMPLETED",
    ),
    "retry": (
        workflow(
            "retry", [fault_node("flaky", fail_on=[1], retry=3, sleep=0.2), fault_node("then", ["flaky"])]
        ),
        "COMPLETED",
    ),
    "failing": (
        workflow(
            "failing",
            [
                fault_node("broken", fail_on="all", retry=2, sleep=0.1),
                fault_node("after_broken", ["broken"]),
                fault_node("fine", sleep=0.2),
                fault_node("after_fine", ["fine"]),
            ],
        ),
        "FAILED",
    ),
}
# Half the replacements are started with a crash point armed: they die by themselves at the worst
# moment (after reporting a result / applying an event, before acknowledging it), some hits later.
CRASH_POINTS = {
    "worker": "worker.after_result_before_ack",
    "orchestrator": "orchestrator.after_receive_before_apply",
}
ROLES = {"worker": 3, "orchestrator": 2}


@pytest.mark.soak
@pytest.mark.timeout(60 + int(2 * SOAK_RUNS / SOAK_RATE))
async def test_soak_under_chaos_loses_nothing_and_duplicates_nothing(
    faults: Callable[..., FaultCluster],
) -> None:
    rng = random.Random(SOAK_SEED)
    engine = faults(VISIBILITY_TIMEOUT_SECONDS=str(VISIBILITY), MAX_DELIVERIES="20")
    await engine.start_many(
        ("api",), ("orchestrator",), ("orchestrator",), ("worker",), ("worker",), ("worker",)
    )
    engine.mortal |= {"worker", "orchestrator"}
    kills: Counter[str] = Counter()
    expected: dict[str, str] = {}

    def replace(role: str) -> None:
        if rng.random() < 0.5:
            engine.start(
                role, DAG_FAULT_CRASH_AT=CRASH_POINTS[role], DAG_FAULT_CRASH_AFTER=str(rng.randint(3, 30))
            )
        else:
            engine.start(role)

    async def chaos() -> None:
        next_kill = time.monotonic() + rng.uniform(*CHAOS_PAUSE_SECONDS)
        while True:
            for role, count in ROLES.items():
                for _ in range(count - len(engine.live(role))):
                    replace(role)
            if time.monotonic() >= next_kill:
                victim = chaos_pick(engine, rng)
                if victim is not None:
                    engine.kill(victim)
                    kills[victim.args[0]] += 1
                    replace(victim.args[0])
                next_kill = time.monotonic() + rng.uniform(*CHAOS_PAUSE_SECONDS)
            await asyncio.sleep(0.05)

    began = time.monotonic()
    chaos_task = asyncio.create_task(chaos())
    try:
        async with engine.client() as client:
            names = sorted(SHAPES)
            for number in range(SOAK_RUNS):
                shape = names[number % len(names)]
                definition, status = SHAPES[shape]
                run_id = await engine.start_run(client, definition, {"n": number})
                expected[run_id] = status
                await asyncio.sleep(1 / SOAK_RATE)
            await engine.wait_final(list(expected), within=30 + SOAK_RUNS / 10)
    finally:
        chaos_task.cancel()
        await asyncio.gather(chaos_task, return_exceptions=True)
    duration = time.monotonic() - began
    crashes = Counter(p.args[0] for p in engine.processes if "fault injection: crash point" in p.log())
    # The chaos is over: replace the processes that still have a crash point armed, then whatever
    # killed processes held is taken over within a visibility timeout or two.
    for process in engine.live("worker") + engine.live("orchestrator"):
        if process.pid in engine.doomed:
            engine.kill(process)
            engine.start(process.args[0])
    await engine.serving(*engine.live("worker"), *engine.live("orchestrator"))
    await engine.wait_drained(within=30)

    figures = check_invariants(engine, list(expected), expected=expected)
    FIGURES["soak"] = {
        "runs": figures.runs,
        "nodes": figures.nodes,
        "kills": sum(kills.values()),
        "worker kills": kills["worker"],
        "orchestrator kills": kills["orchestrator"],
        "worker crash points": crashes["worker"],
        "orchestrator crash points": crashes["orchestrator"],
        "seconds": round(duration, 1),
        "lost": figures.lost,
        "duplicated completions": figures.duplicated_completions,
        "repeated executions": figures.repeated_executions,
        "histories checked": figures.histories,
        "seed": SOAK_SEED,
    }
    assert figures.lost == 0 and figures.duplicated_completions == 0
    assert figures.statuses == Counter(expected.values())
    assert sum(kills.values()) >= max(3, int(duration / CHAOS_PAUSE_SECONDS[1]) - 2), kills
