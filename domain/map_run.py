"""How a run runs a map node's items (part of the run aggregate, kept apart for its size).

The rules (``domain.map_spec`` says what a map is):

- the list is read when the output holding it is recorded (or when the run starts, for the input);
  the node keeps its length (``MapState``), or why it is no list (``node.error``, ``ForEachError``);
- when the node's trigger rule and condition let it run, it is RUNNING and dispatches its first
  items, up to ``max_concurrency``; each item that ends lets the next one go. An empty list completes
  the node at once; no list fails it, naming what it got;
- an item whose condition (``MapSpec.item_condition``, checked by its worker) is false ends SKIPPED,
  its place in the output null; it is not a failure;
- an item's attempt fails and is retried by the node's retry policy, as a node's would; an item that
  fails for good counts against ``tolerated_failures``: one more than tolerated and the node fails at
  once, its items in flight cancelled;
- when every item has ended the node completes; its output is ``MapOutput`` (the store holds each
  item's output, a failed one as ``{"error": ...}``).

Work per item event is O(1), plus O(items in flight) once when the node or the run ends early.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from domain.errors import TemplateError
from domain.events import OUTPUT_LOST, CancelAttempts, DispatchNode, ScheduleRetry
from domain.heartbeats import attempt_timeout, schedule_deadlines
from domain.json_values import json_type
from domain.map_spec import ATTEMPTS_PER_LIFE, ITEMS_FAILED, NOT_A_LIST, MapOutput, MapSpec, item_key
from domain.map_state import ItemRun, MapState
from domain.node_state import ErrorInfo, NodeRun
from domain.outcome import Step
from domain.reasons import (
    CONDITION_FALSE,
    OUTPUT_LOST_ERROR,
    TIMEOUT_ERROR,
    output_lost_message,
    timeout_message,
)
from domain.run_data import run_data
from domain.statuses import NodeStatus

if TYPE_CHECKING:
    from domain.events import (
        AttemptTimedOut,
        EventDeadLettered,
        NodeFailed,
        NodeStarted,
        NodeSucceeded,
        RetryDue,
    )
    from domain.run import Run

_IN_FLIGHT = (NodeStatus.QUEUED, NodeStatus.RUNNING)
CANCELLED_ITEM = "Cancelled"
FAILED_MARK, REDO_MARK = "f", "r"
"""How a store marks an item that failed in this life, and one a redrive put back (``Step.item_marked``)."""


def count_items(run: Run, root: str, step: Step) -> None:
    """``root`` (a node, or the workflow namespace) has just got its data: the map nodes that read
    their list from it, not started yet, read it now and keep its length."""
    data = run_data(run.outputs, run.input)
    for index in run.plan.map_sources.get(root, ()):
        node = run.nodes[index]
        if not node.undecided:
            continue
        spec = run.plan.nodes[index].map
        assert spec is not None
        node.items, node.error = _read_list(spec, data)
        step.changed.append(index)


def _read_list(spec: MapSpec, data: Any) -> tuple[MapState | None, ErrorInfo | None]:
    text = spec.source.text
    try:
        value = spec.source.resolve_in(data)
    except TemplateError as error:
        return None, ErrorInfo(NOT_A_LIST, f"for_each '{text}' cannot be read: {error}")
    if not isinstance(value, list):
        return None, ErrorInfo(NOT_A_LIST, f"for_each '{text}' must be a list, got {json_type(value)}")
    return MapState(len(value)), None


def start_map(run: Run, index: int, step: Step, ended: deque[int]) -> None:
    """Map node ``index`` may run: it starts its first items, or ends at once (no list, or an empty
    one) and joins ``ended``."""
    node = run.nodes[index]
    spec = run.plan.nodes[index]
    if node.items is None:
        error = node.error or ErrorInfo(
            NOT_A_LIST, f"for_each '{spec.map.source.text if spec.map else ''}': its data has no output"
        )
        node.error = step.error = error
        run._settle(index, NodeStatus.FAILED, step)
        ended.append(index)
        run._count_failure(index, step, ended)
        return
    node.attempt += 1  # the map's life: its items' attempt numbers count from it
    node.status = NodeStatus.RUNNING
    node.queued_at = node.started_at = step.at
    node.worker_id = None
    node.error = None
    _add_dispatched(step, spec.id)
    if node.items.total == 0:
        _complete(run, index, step)
        ended.append(index)
        return
    run.in_flight += 1
    step.changed.append(index)
    _fill(run, index, step)


def _add_dispatched(step: Step, node_id: str) -> None:
    if step.dispatched is None:
        step.dispatched = [node_id]
    else:
        step.dispatched.append(node_id)


def _fill(run: Run, index: int, step: Step) -> None:
    """Dispatch the next items while the map has room."""
    node = run.nodes[index]
    items = node.items
    spec = run.plan.nodes[index].map
    assert items is not None and spec is not None
    room = spec.max_concurrency - len(items.live)
    if room <= 0 or not items.waiting:
        return
    node_id = run.plan.nodes[index].id
    base = (node.attempt - 1) * ATTEMPTS_PER_LIFE
    while room and items.redo:
        item = items.redo.pop()
        step.item_marked(index, item, None)
        _dispatch_item(run, index, node_id, item, base, step)
        room -= 1
    count = min(room, items.total - items.next_item)
    for item in range(items.next_item, items.next_item + count):
        _dispatch_item(run, index, node_id, item, base, step)
    items.next_item += count


def _dispatch_item(run: Run, index: int, node_id: str, item: int, base: int, step: Step) -> None:
    items = run.nodes[index].items
    assert items is not None
    items.live[item] = ItemRun(base + 1, queued_at=step.at, attempts_before=base)
    step.commands.append(DispatchNode(run.run_id, item_key(node_id, item), base + 1))
    step.item_changed(index, item)


# -- item events (``Run.apply`` routes an event whose node id is an item key here) -----------------


def live_item(run: Run, node_id: str, item: int, attempt: int | None) -> tuple[int, ItemRun] | None:
    """The map node's index and the item, when the item is live (with ``attempt``, if given)."""
    index = run._index_while_running(node_id)
    if index is None:
        return None
    node = run.nodes[index]
    if node.status is not NodeStatus.RUNNING or node.items is None:
        return None
    state = node.items.live.get(item)
    if state is None or (attempt is not None and state.attempt != attempt):
        return None
    return index, state


def item_started(run: Run, event: NodeStarted, item: int, step: Step) -> bool:
    found = _in_flight(run, event.node_id, item, event.attempt)
    if found is None:
        return False
    index, state = found
    if state.status is NodeStatus.RUNNING and state.worker_id == event.worker_id:
        return False
    state.status = NodeStatus.RUNNING
    state.started_at = event.at
    state.worker_id = step.worker_id = event.worker_id
    step.item_changed(index, item)
    schedule_deadlines(run.plan, run.plan.nodes[index], event, step)  # as a node's attempt
    return True


def item_succeeded(run: Run, event: NodeSucceeded, item: int, step: Step) -> bool:
    found = _reported(run, event, item, step)
    if found is None:
        return False
    index, state = found
    if event.output is OUTPUT_LOST:
        message = output_lost_message(event.attempt)
        _fail_item_attempt(run, index, item, state, ErrorInfo(OUTPUT_LOST_ERROR, message), True, step)
        return True
    _end_item(run, index, item, state, NodeStatus.COMPLETED, step)
    step.recorded_item = (event.node_id, event.output)
    _after_item_ended(run, index, step)
    return True


def item_failed(run: Run, event: NodeFailed, item: int, step: Step) -> bool:
    found = _reported(run, event, item, step)
    if found is None:
        return False
    index, state = found
    error = ErrorInfo(event.error_type, event.message)
    _fail_item_attempt(run, index, item, state, error, event.retryable, step)
    return True


def item_timed_out(run: Run, event: AttemptTimedOut, item: int, step: Step) -> bool:
    found = _in_flight(run, event.node_id, item, event.attempt)
    if found is None:
        return False
    index, state = found
    timeout, default = attempt_timeout(run.plan, run.plan.nodes[index])
    if timeout is None or (state.started_at is not None and event.at < state.started_at + timeout):
        return False  # set by an earlier start of this attempt
    error = ErrorInfo(TIMEOUT_ERROR, timeout_message(event.attempt, timeout, default=default))
    # Its worker is told to stop it: a hung handler must not keep the place its retry needs.
    step.commands.append(CancelAttempts(run.run_id, ((event.node_id, event.attempt),)))
    _fail_item_attempt(run, index, item, state, error, True, step)
    return True


def item_retry_due(run: Run, event: RetryDue, item: int, step: Step) -> bool:
    found = live_item(run, _map_id(event.node_id), item, None)
    if found is None:
        return False
    index, state = found
    if state.retry_at is None or state.status is not NodeStatus.PENDING or event.attempt != state.attempt + 1:
        return False
    state.attempt += 1
    state.status = NodeStatus.QUEUED
    state.queued_at = step.at
    state.started_at = state.retry_at = None
    state.worker_id = None
    step.commands.append(DispatchNode(run.run_id, event.node_id, state.attempt))
    step.item_changed(index, item)
    return True


def _map_id(key: str) -> str:
    return key.rpartition("#")[0]


def _in_flight(run: Run, key: str, item: int, attempt: int) -> tuple[int, ItemRun] | None:
    found = live_item(run, _map_id(key), item, attempt)
    if found is None or found[1].status not in _IN_FLIGHT:
        return None
    return found


def _reported(
    run: Run, event: NodeSucceeded | NodeFailed, item: int, step: Step
) -> tuple[int, ItemRun] | None:
    """The map node's index and the item in flight that ``event`` reports the end of; the worker
    that reports it ran it (it may have taken it over)."""
    found = _in_flight(run, event.node_id, item, event.attempt)
    if found is None:
        return None
    state = found[1]
    if event.worker_id:
        state.worker_id = event.worker_id
    if event.started_at is not None:
        state.started_at = event.started_at
    step.worker_id = state.worker_id
    return found


def _fail_item_attempt(
    run: Run, index: int, item: int, state: ItemRun, error: ErrorInfo, retryable: bool, step: Step
) -> None:
    spec = run.plan.nodes[index]
    state.error = step.error = error
    if error.type == CONDITION_FALSE:  # its worker found its condition false: it is skipped
        _end_item(run, index, item, state, NodeStatus.SKIPPED, step)
        step.recorded_item = (item_key(spec.id, item), None)
        _after_item_ended(run, index, step)
        return
    if retryable and state.attempts_this_time < spec.retry.max_attempts and spec.retry.retries(error.type):
        state.status = NodeStatus.PENDING
        delay = spec.retry.delay_before(state.attempts_this_time + 1, f"{run.run_id}/{spec.id}#{item}")
        state.retry_at = step.retry_at = step.at + delay
        key = item_key(spec.id, item)
        step.commands.append(ScheduleRetry(run.run_id, key, state.attempt + 1, state.retry_at))
        step.item_changed(index, item)
        return
    _end_item(run, index, item, state, NodeStatus.FAILED, step)
    step.recorded_item = (item_key(spec.id, item), {"error": {"type": error.type, "message": error.message}})
    items = run.nodes[index].items
    assert items is not None and spec.map is not None
    if not spec.map.tolerance.allows(items.failed, items.total):
        _fail_map(run, index, item, error, step)
        return
    _after_item_ended(run, index, step)


def _end_item(run: Run, index: int, item: int, state: ItemRun, status: NodeStatus, step: Step) -> None:
    items = run.nodes[index].items
    assert items is not None
    del items.live[item]
    state.status = status
    state.finished_at = step.at
    state.retry_at = None
    if status is NodeStatus.COMPLETED:
        items.succeeded += 1
        state.error = None
    elif status is NodeStatus.SKIPPED:
        items.skipped += 1
    else:
        if status is NodeStatus.FAILED:
            items.failed += 1
        else:
            items.cancelled += 1
        items.failed_items.add(item)
        step.item_marked(index, item, FAILED_MARK)
    step.item_ended(index, item, state)


def _after_item_ended(run: Run, index: int, step: Step) -> None:
    items = run.nodes[index].items
    assert items is not None
    _fill(run, index, step)
    step.changed.append(index)
    if items.ended < items.total:
        return
    run.in_flight -= 1
    _complete(run, index, step)
    run._tell_children(deque([index]), step)
    run._finish_if_done(step)


def _complete(run: Run, index: int, step: Step) -> None:
    """Every item of map node ``index`` has ended, few enough of them failed: the node completes."""
    items = run.nodes[index].items
    assert items is not None
    node_id = run.plan.nodes[index].id
    run._settle(index, NodeStatus.COMPLETED, step)
    run.outputs[node_id] = MapOutput(items.total)
    step.output_recorded(node_id)


def _fail_map(run: Run, index: int, item: int, error: ErrorInfo, step: Step) -> None:
    """One item failed more than the node tolerates: the node fails now, its live items cancelled."""
    spec = run.plan.nodes[index]
    node = run.nodes[index]
    items = node.items
    assert items is not None and spec.map is not None
    cancel_items(run, index, step)
    node.error = step.error = ErrorInfo(
        ITEMS_FAILED,
        f"{items.failed} of {items.total} items failed, more than the {spec.map.tolerance.describe()} "
        f"tolerated; item {item} failed with {error.type}: {error.message}",
    )
    run._close(index, NodeStatus.FAILED, step)
    run._failed_for_good(index, step)


def live_attempts(run: Run, index: int) -> list[tuple[str, int]]:
    """The (item key, attempt) of map node ``index``'s items in flight."""
    items = run.nodes[index].items
    if items is None:
        return []
    node_id = run.plan.nodes[index].id
    return [(item_key(node_id, i), s.attempt) for i, s in items.live.items() if s.status in _IN_FLIGHT]


def cancel_items(run: Run, index: int, step: Step) -> None:
    """Map node ``index`` fails without its live items: their workers are told, they end."""
    attempts = live_attempts(run, index)
    if attempts:
        step.commands.append(CancelAttempts(run.run_id, tuple(attempts)))
    end_items(run, index, step)


def end_items(run: Run, index: int, step: Step) -> None:
    """Map node ``index`` ends without its live items (their workers told by the caller): they end
    CANCELLED."""
    items = run.nodes[index].items
    if items is None or not items.live:
        return
    error = ErrorInfo(CANCELLED_ITEM, "cancelled: its map node ended without it")
    for item, state in list(items.live.items()):
        state.error = error
        _end_item(run, index, item, state, NodeStatus.CANCELLED, step)


def reset_items(index: int, node: NodeRun, whole: bool, step: Step) -> None:
    """A redrive runs map node ``index`` again, in a new life: all of its items when ``whole`` (it
    or one of its ancestors was named in ``from``: what its items read may change), else those that
    did not complete."""
    items = node.items
    if items is None:
        return
    node.items = items.fresh() if whole else items.again()
    for item in items.redo:
        step.item_marked(index, item, None)
    for item in items.failed_items:
        step.item_marked(index, item, None if whole else REDO_MARK)


def item_dead_lettered(run: Run, event: EventDeadLettered, item: int, error: ErrorInfo, step: Step) -> bool:
    """The retry ``event.attempt`` of an item could not be dispatched: the item fails for good."""
    found = live_item(run, _map_id(event.node_id or ""), item, None)
    if found is None:
        return False
    index, state = found
    if state.retry_at is None or state.status is not NodeStatus.PENDING or event.attempt != state.attempt + 1:
        return False
    _fail_item_attempt(run, index, item, state, error, False, step)
    return True
