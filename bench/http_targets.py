"""The HTTP path benchmark's figures, ratios and verdicts (issue 17's targets), as pure functions of
the rounds' figures, so that the table's arithmetic is tested apart from any timing.

A round holds, measured in one session: the floor (one unpipelined XADD + XREADGROUP + XACK cycle,
median, ms) of each stack's redis-server, the in-engine headline figure of each workload and the
same figure over HTTP per waiting style. A ratio is a *speed* ratio, HTTP against in-engine in the
same round: 1.0x means as fast, 0.5x half as fast, whichever way the figure is read (W1's ms per hop
is better lower, the others' rates higher).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

WORKLOAD_FIGURES = {
    "W1": ("ms per hop, end to end", "e2e_ms_per_node", False),
    "W2": ("nodes/s", "nodes_per_second", True),
    "W3": ("runs/s", "runs_per_second", True),
    "W4": ("nodes/s", "nodes_per_second", True),
}
"""workload -> (unit, key of the row, higher is better)."""

STYLES = {
    "poll": "seed routes, GET /api/workflows/{id} every 2 ms",
    "wait": "seed routes, GET /api/workflows/{id}?wait=",
    "runs-wait": "resource API, GET /api/runs/{id}?wait=",
    "sse": "resource API, GET /api/runs/{id}/events (SSE)",
}
WAITING_STYLES = ("wait", "runs-wait", "sse")
DEFAULT_STYLES = ("poll", "wait", "sse")

FLOOR_TARGET = 2.5
"""The in-engine W1 hop, end to end, at most this many floor cycles measured in the same run."""


@dataclass(frozen=True)
class Target:
    style: str
    workload: str
    at_least: float

    @property
    def label(self) -> str:
        return f"{self.workload} {self.style} >= {self.at_least:g}x in-engine"


def targets(styles: list[str], workloads: list[str]) -> list[Target]:
    """Issue 17's ratio targets for the styles and workloads measured: every waiting style >= 0.9x
    on W1-W4; the 2 ms poller W1 >= 0.8x and W4 >= 0.7x; W3 (500 concurrent waiters) >= 0.8x over
    HTTP whichever way the client waits (for the waiting styles 0.9x is the stricter, so W3's 0.8x
    is judged on the poller only)."""
    found = []
    for style in styles:
        for workload in workloads:
            if style in WAITING_STYLES:
                found.append(Target(style, workload, 0.9))
            elif style == "poll" and workload in ("W1", "W3", "W4"):
                found.append(Target(style, workload, {"W1": 0.8, "W3": 0.8, "W4": 0.7}[workload]))
    return found


def speed_ratio(workload: str, http: float, engine: float) -> float:
    """How fast HTTP is against in-engine: >1 faster, <1 slower."""
    higher_better = WORKLOAD_FIGURES[workload][2]
    return http / engine if higher_better else engine / http


def headline(workload: str, row: dict[str, Any] | None) -> float | None:
    """The workload's figure in a result row; None when it did not complete."""
    if row is None or "error" in row:
        return None
    value = row.get(WORKLOAD_FIGURES[workload][1])
    return None if value is None else float(value)


@dataclass(frozen=True)
class Spread:
    """Median and range of a figure over the rounds that have it."""

    median: float
    low: float
    high: float
    count: int

    @classmethod
    def of(cls, values: list[float | None]) -> Spread | None:
        present = [value for value in values if value is not None]
        if not present:
            return None
        return cls(statistics.median(present), min(present), max(present), len(present))


def ratios(rounds: list[dict[str, Any]], style: str, workload: str) -> list[float | None]:
    """Per round, HTTP in ``style`` against in-engine, both of that round (None where either is missing)."""
    found: list[float | None] = []
    for figures in rounds:
        engine = headline(workload, figures["engine"].get(workload))
        http = headline(workload, figures["http"].get(style, {}).get(workload))
        found.append(None if engine is None or http is None else speed_ratio(workload, http, engine))
    return found


def floor_multiples(rounds: list[dict[str, Any]], side: str, style: str | None = None) -> list[float | None]:
    """Per round, the W1 hop end to end (in-engine, or over HTTP in ``style``) in floor cycles of the
    redis-server of the same stack."""
    found: list[float | None] = []
    for figures in rounds:
        floor = figures["floor_ms"].get(side)
        row = figures["engine"].get("W1") if side == "engine" else figures["http"].get(style, {}).get("W1")
        hop = headline("W1", row)
        found.append(None if floor is None or hop is None or floor <= 0 else hop / floor)
    return found


def verdicts(rounds: list[dict[str, Any]], styles: list[str], workloads: list[str]) -> list[dict[str, Any]]:
    """One row per target: the per-round ratios' median and range, and whether the median meets it
    (None: not measured)."""
    rows = []
    for target in targets(styles, workloads):
        spread = Spread.of(ratios(rounds, target.style, target.workload))
        rows.append(
            {
                "target": target.label,
                "spread": spread,
                "met": None if spread is None else spread.median >= target.at_least,
            }
        )
    if "W1" in workloads:
        spread = Spread.of(floor_multiples(rounds, "engine"))
        rows.append(
            {
                "target": f"W1 in-engine hop <= {FLOOR_TARGET:g}x floor",
                "spread": spread,
                "met": None if spread is None else spread.median <= FLOOR_TARGET,
                "unit": "x floor",
            }
        )
    return rows
