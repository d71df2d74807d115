"""Which event settles a message that went to the dead-letter stream, so that its run still ends.

No orchestrator could apply an event, or no worker could finish a task, ``MAX_DELIVERIES`` times:
what it left open is closed. A task, or a result of an attempt, fails that attempt for good; a run's
start fails the run; a retry fails its node. The settling events are themselves never settled again
(nothing loops); a start report needs nothing, and a cancel is left undone (the run ends by itself).
"""

from __future__ import annotations

from domain.events import (
    AttemptTimedOut,
    Event,
    EventDeadLettered,
    NodeFailed,
    NodeSucceeded,
    RetryDue,
    RunStarted,
)
from domain.messages import Task
from domain.reasons import DEAD_LETTERED


def settle_dead_event(event: Event, reason: str, at: float) -> Event | None:
    """The event that settles ``event``, dead-lettered for ``reason``; None when nothing needs to."""
    what = f"event {type(event).__name__} {reason}"
    match event:
        case NodeSucceeded() | AttemptTimedOut() | NodeFailed() if not is_settlement(event):
            return _final_failure(event.run_id, event.node_id, event.attempt, what, at)
        case RunStarted():
            return EventDeadLettered(event.run_id, None, 0, what, at)
        case RetryDue():
            return EventDeadLettered(event.run_id, event.node_id, event.attempt, what, at)
        case _:
            return None


def settle_dead_task(task: Task, reason: str, at: float) -> Event:
    """The event that settles ``task``, dead-lettered for ``reason``: its attempt fails for good."""
    return _final_failure(task.run_id, task.node_id, task.attempt, f"task {reason}", at)


def is_settlement(event: Event) -> bool:
    """Whether ``event`` is itself the settlement of a dead letter."""
    return isinstance(event, NodeFailed) and event.error_type == DEAD_LETTERED


def _final_failure(run_id: str, node_id: str, attempt: int, message: str, at: float) -> NodeFailed:
    return NodeFailed(run_id, node_id, attempt, DEAD_LETTERED, message, at, retryable=False)
