"""Reading a ``MONITOR`` capture of a W1 chain into the steps of each hop (``bench.hop_timeline``),
apart from the module that runs the engine, so that reading one imports no engine handler."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

STEPS = (
    "the commit's XADD of the task -> the worker stamps started",
    "started -> the attempt's read of its inputs reaches Redis",
    "that read -> finished (round trip, config, handler, output check)",
    "finished -> the result's XADD reaches Redis",
    "the result's XADD -> the orchestrator's commit reaches Redis",
    "the commit reaches Redis -> its XADD of the next task",
    "whole hop (task XADD to task XADD)",
)
TASK = re.compile(r"^XADD \S+:tasks \* .* n (n\d+) ")
RESULT = re.compile(r"^XADD \S+:events \* k ok .* n (n\d+) a \d+ t ([\d.]+) w \S+ s ([\d.]+)")
INPUTS = re.compile(r"^HMGET \S+:out (n\d+)$")


@dataclass
class Timeline:
    """Per chain node: when its task was queued, its inputs read, its result sent, its commit sent."""

    task: dict[str, float] = field(default_factory=dict)
    inputs_read: dict[str, float] = field(default_factory=dict)  # keyed by the parent read
    result: dict[str, float] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)
    finished: dict[str, float] = field(default_factory=dict)
    commit: dict[str, float] = field(default_factory=dict)
    awaiting_commit: str | None = None  # the node whose result the orchestrator's next EVALSHA commits

    def add(self, at: float, command: str) -> None:
        if found := TASK.match(command):
            self.task[found.group(1)] = at
        elif found := INPUTS.match(command):
            self.inputs_read.setdefault(found.group(1), at)
        elif found := RESULT.match(command):
            node = found.group(1)
            self.result[node], self.finished[node], self.started[node] = at, float(found[2]), float(found[3])
            self.awaiting_commit = node
        elif command.startswith("EVALSHA") and self.awaiting_commit is not None:
            self.commit.setdefault(self.awaiting_commit, at)
            self.awaiting_commit = None

    def steps_ms(self) -> dict[str, list[float]]:
        found: dict[str, list[float]] = {step: [] for step in STEPS}
        for node in self.task:
            number = int(node[1:])
            parent, child = f"n{number - 1}", f"n{number + 1}"
            if not (
                node in self.result
                and node in self.commit
                and parent in self.inputs_read
                and child in self.task
            ):
                continue
            marks = (
                self.task[node],
                self.started[node],
                self.inputs_read[parent],
                self.finished[node],
                self.result[node],
                self.commit[node],
                self.task[child],
            )
            for step, earlier, later in zip(STEPS[:-1], marks[:-1], marks[1:], strict=True):
                found[step].append((later - earlier) * 1000)
            found[STEPS[-1]].append((self.task[child] - self.task[node]) * 1000)
        return found


def parse(lines: list[str]) -> Timeline:
    """``<time> <client or lua:> <command ...>`` lines, as this module writes them."""
    timeline = Timeline()
    for line in lines:
        at, _, command = line.split(" ", 2)
        timeline.add(float(at), command)
    return timeline
