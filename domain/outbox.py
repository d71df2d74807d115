"""What a transition sends out: the tasks of the nodes it dispatched and the timers it set.

Both backends write these in the same atomic step as the state change (the outbox), so a crash can
never keep a state change and lose its consequences.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from domain.events import (
    AttemptTimedOut,
    CancelAttempts,
    Command,
    DispatchNode,
    FinishRun,
    RetryDue,
    RunTimedOut,
    ScheduleDeadline,
    ScheduleRetry,
    ScheduleRunDeadline,
)
from domain.map_spec import split_key
from domain.messages import Task
from domain.run import Run


@dataclass(frozen=True, slots=True)
class Timer:
    """An event to deliver at ``due_at`` (its own ``at``)."""

    event: RetryDue | AttemptTimedOut | RunTimedOut

    @property
    def due_at(self) -> float:
        return self.event.at


def task_of(run: Run, command: DispatchNode) -> Task:
    spec = run.plan.node(split_key(command.node_id)[0])  # a map's item runs its node's handler
    return Task(run.run_id, run.definition_id, command.node_id, command.attempt, spec.handler, spec.queue)


def timer_of(command: ScheduleRetry | ScheduleDeadline | ScheduleRunDeadline) -> Timer:
    if isinstance(command, ScheduleRunDeadline):
        return Timer(RunTimedOut(command.run_id, command.due_at))
    if isinstance(command, ScheduleRetry):
        return Timer(RetryDue(command.run_id, command.node_id, command.attempt, command.due_at))
    return Timer(AttemptTimedOut(command.run_id, command.node_id, command.attempt, command.due_at))


def outbox(run: Run, commands: Iterable[Command], tasks: list[Task], timers: list[Timer]) -> None:
    """Append to ``tasks`` and ``timers`` what ``commands`` (of ``run``) send out."""
    for command in commands:
        if isinstance(command, DispatchNode):
            tasks.append(task_of(run, command))
        elif not isinstance(command, FinishRun | CancelAttempts):
            timers.append(timer_of(command))
