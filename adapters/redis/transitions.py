"""Applying events to runs stored in Redis: read, decide with the domain, commit with checks.

The run aggregate (``domain.run.Run``) decides every transition, exactly as on the memory backend.
This module only keeps the runs it works on, turns each ``Outcome`` into writes, and commits them with
``lua/commit.lua``: per run, the commit checks that the run's version is still the one the decision
was based on, and writes its state, indexes, history, tasks and timers in the same atomic step (the
outbox), acknowledging the events it applied in that step too. A run whose check fails (another
orchestrator committed first) is read again and its events decided again.

Runs stay cached between batches with their version, so an orchestrator that is the only one applying
a run's events reads it once; a run leaves the cache when it ends, when a check finds it stale, and
when the cache is over its bound (least recently used first).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from adapters.errors import AdapterError
from adapters.redis.changes import change_word
from adapters.redis.codec import STAGED, encode_task, encode_timer, staged_field
from adapters.redis.codec.runs import (
    STATUS,
    VERSION,
    StoredRun,
    decode_output,
    encode_entry,
    encode_item,
    encode_node,
    encode_output,
    mark_field,
    progress_fields,
    run_output_field,
)
from adapters.redis.commit import Commit, CommitScript, Group
from adapters.redis.keys import EVENTS_GROUP, KeySpace, RunKeys
from adapters.redis.streams import entry_of
from domain.events import OUTPUT_LOST, Command, Event, NodeSucceeded, RunStarted
from domain.map_spec import item_key
from domain.map_state import ItemRun
from domain.messages import Task
from domain.outbox import Timer, outbox
from domain.plan import WorkflowPlan
from domain.ports import Delivery
from domain.run import Outcome, Run
from domain.statuses import RunStatus
from domain.templates import WORKFLOW_NAMESPACE

log = logging.getLogger(__name__)

CACHE_MAX_NODES = 1_000_000
"""Nodes of cached runs one orchestrator keeps at most (about 150 MiB at worst; inputs and outputs
are not kept)."""
MAX_ROUNDS = 20
"""Times a batch's runs are decided again after their checks failed, before giving up on the batch."""


class RunCache:
    """Runs with the version of their stored state, least recently used first."""

    def __init__(self, max_nodes: int = CACHE_MAX_NODES) -> None:
        self._runs: OrderedDict[str, StoredRun] = OrderedDict()
        self._nodes = 0
        self._max_nodes = max_nodes

    def get(self, run_id: str) -> StoredRun | None:
        stored = self._runs.get(run_id)
        if stored is not None:
            self._runs.move_to_end(run_id)
        return stored

    def put(self, stored: StoredRun) -> None:
        self.drop(stored.run.run_id)
        self._runs[stored.run.run_id] = stored
        self._nodes += len(stored.run.nodes)
        while self._nodes > self._max_nodes and len(self._runs) > 1:
            _, oldest = self._runs.popitem(last=False)
            self._nodes -= len(oldest.run.nodes)

    def drop(self, run_id: str) -> None:
        stored = self._runs.pop(run_id, None)
        if stored is not None:
            self._nodes -= len(stored.run.nodes)

    def __len__(self) -> int:
        return len(self._runs)


@dataclass(slots=True)
class _RunBatch:
    """The events of one run in a batch (positions in the batch), and what deciding them gave."""

    run_id: str
    positions: list[int]
    commands: list[Command] = field(default_factory=list)
    staged_checks: dict[int, int] = field(default_factory=dict)
    """Check number -> batch position of the success whose staged output the check needs."""
    applied: bool = False
    """Whether any of its events changed the run (the commit then makes the next version)."""
    reloaded: bool = False


class RedisTransitions:
    """The ``apply`` of ``RedisRunRepository``."""

    def __init__(
        self,
        load: Callable[[list[str]], Awaitable[list[StoredRun]]],
        plan_of: Callable[[str], Awaitable[WorkflowPlan | None]],
        read_staged: Callable[[list[tuple[str, str]]], Awaitable[list[str | None]]],
        keys: KeySpace,
        script: CommitScript,
        retention_seconds: int,
    ) -> None:
        self._load_runs = load
        self._plan_of = plan_of
        self._read_staged = read_staged
        self._keys = keys
        self._script = script
        self._retention = retention_seconds
        self.cache = RunCache()
        # One apply at a time in a process: the API's (a redrive) and the orchestrator's share the
        # cached runs of a process that serves both (``web``, ``up``).
        self._lock = asyncio.Lock()

    async def apply(
        self, events: Sequence[Event], delivered: Sequence[Delivery[Event]] = ()
    ) -> list[Command]:
        """``delivered``: the events' deliveries, each acknowledged by the commit of its run."""
        async with self._lock:
            return await self._apply(events, delivered)

    async def _apply(self, events: Sequence[Event], delivered: Sequence[Delivery[Event]]) -> list[Command]:
        events = list(events)
        batches: dict[str, _RunBatch] = {}
        for position, event in enumerate(events):
            batch = batches.get(event.run_id)
            if batch is None:
                batch = batches[event.run_id] = _RunBatch(event.run_id, [])
            batch.positions.append(position)
        lost: set[int] = set()
        """Positions of successes whose staged output is gone."""
        resolved: set[int] = set()
        """Positions of successes whose staged output was read for a decision (``_resolve_staged``)."""
        commands: list[Command] = []
        pending = list(batches.values())
        for _ in range(MAX_ROUNDS):
            await self._load(pending, events)
            await self._resolve_staged(pending, events, lost, resolved)
            commits: dict[int, Commit] = {}
            for batch in pending:
                shard = self._keys.shard_of(batch.run_id)
                commit = commits.get(shard)
                if commit is None:
                    commit = commits[shard] = Commit()
                group = commit.group(batch)
                self._acknowledge(batch, delivered, group)
                self._decide(batch, events, lost, resolved, group)
            pending = await self._commit(list(commits.values()), commands, lost)
            if not pending:
                return commands
        raise AdapterError(f"gave up committing {len(pending)} runs after {MAX_ROUNDS} rounds of conflicts")

    async def _load(self, batches: list[_RunBatch], events: Sequence[Event]) -> None:
        """Read the runs not cached (unknown runs stay out of the cache). A run whose first event
        here is its start, naming its definition, is not read: it is made in its initial state, as
        the API stored it (version 0), and the commit's version check says whether it still is."""
        missing = []
        for batch in batches:
            if self.cache.get(batch.run_id) is not None:
                continue
            first = events[batch.positions[0]]
            if type(first) is RunStarted and first.definition_id is not None and not batch.reloaded:
                plan = await self._plan_of(first.definition_id)
                # A run whose decisions read its input (a condition on a root, a map over it) is
                # read for it.
                if plan is not None and WORKFLOW_NAMESPACE not in plan.recorded_reads:
                    run = Run.create(first.run_id, first.definition_id, plan, {}, first.at)
                    self.cache.put(StoredRun(run, 0))
                    continue
            missing.append(batch.run_id)
        if missing:
            for stored in await self._load_runs(missing):
                self.cache.put(stored)

    async def _resolve_staged(
        self, batches: list[_RunBatch], events: list[Event], lost: set[int], resolved: set[int]
    ) -> None:
        """A staged output that a run's own decisions read (a condition, the output mapping) is read
        before deciding: the event then carries the value (or counts as lost when it is gone)."""
        wanted: list[int] = []
        for batch in batches:
            stored = self.cache.get(batch.run_id)
            if stored is None:
                continue
            reads = stored.run.plan.recorded_reads
            if not reads:
                continue
            wanted.extend(
                p for p in batch.positions if _is_staged(events[p]) and _node_of(events[p]) in reads
            )
        if not wanted:
            return
        values = await self._read_staged([(events[p].run_id, _staged(events[p])) for p in wanted])
        for position, raw in zip(wanted, values, strict=True):
            if raw is None:
                lost.add(position)
            else:
                success = events[position]
                assert isinstance(success, NodeSucceeded)
                events[position] = dataclasses.replace(success, output=decode_output(raw))
                resolved.add(position)

    def _acknowledge(self, batch: _RunBatch, delivered: Sequence[Delivery[Event]], group: Group) -> None:
        """The deliveries of the run's events are acknowledged by the commit of their effect."""
        if delivered:
            entries = [entry_of(delivered[position].receipt)[1] for position in batch.positions]
            group.xack(self._keys.shard_for_run(batch.run_id).events, EVENTS_GROUP, entries)

    def _decide(
        self, batch: _RunBatch, events: Sequence[Event], lost: set[int], resolved: set[int], group: Group
    ) -> None:
        batch.commands.clear()
        batch.staged_checks.clear()
        batch.applied = False
        keys = self._keys.run(batch.run_id)
        stored = self.cache.get(batch.run_id)
        if stored is None:
            log.warning("ignoring %d events for unknown run %s", len(batch.positions), batch.run_id)
            group.hdel(keys.staged, [_staged(events[p]) for p in batch.positions if _is_staged(events[p])])
            return
        run = stored.run
        group.require_equal(keys.meta, VERSION, str(stored.version))
        before = progress_fields(run, stored.version)
        outcomes: list[Outcome] = []
        unapplied_staged: list[str] = []
        for position in batch.positions:
            event = events[position]
            if position in lost:
                event = dataclasses.replace(event, output=OUTPUT_LOST)
            outcome = run.apply(event)
            if outcome is None:
                if _is_staged(event):  # a success that is not applied must not leave its output behind
                    unapplied_staged.append(_staged(event))
                continue
            outcomes.append(outcome)
            batch.commands.extend(outcome.commands)
            if outcome.cleared_outputs:  # before a later event of the batch records them again
                group.hdel(keys.out, outcome.cleared_outputs)
            if outcome.recorded_outputs:  # the event's node, and any map it completed at once
                for node_id in outcome.recorded_outputs:
                    self._write_output(run, node_id, event, keys, group, batch, position)
                if position in resolved:
                    group.hdel(keys.staged, [_staged(event)])
            if outcome.recorded_item is not None:
                self._write_item_output(outcome.recorded_item, event, keys, group, batch, position)
        group.hdel(keys.staged, unapplied_staged)
        batch.applied = bool(outcomes)
        if outcomes:
            self._write_outcomes(stored, before, outcomes, keys, group)

    def _write_output(
        self,
        run: Run,
        node_id: str,
        event: Event,
        keys: RunKeys,
        group: Group,
        batch: _RunBatch,
        position: int,
    ) -> None:
        # Kept here when the run's conditions or output mapping read it; else only in Redis.
        reads = run.plan.decision_reads
        output = run.outputs[node_id] if node_id in reads else run.outputs.pop(node_id)
        if output is STAGED:
            assert isinstance(event, NodeSucceeded)
            field_name = staged_field(event.node_id, event.attempt)
            batch.staged_checks[group.require_field(keys.staged, field_name)] = position
            group.hmove(keys.staged, field_name, keys.out, event.node_id)
        else:
            group.hset(keys.out, {node_id: encode_output(output)})

    def _write_item_output(
        self,
        recorded: tuple[str, Any],
        event: Event,
        keys: RunKeys,
        group: Group,
        batch: _RunBatch,
        position: int,
    ) -> None:
        key, output = recorded
        if output is STAGED:
            assert isinstance(event, NodeSucceeded)
            field_name = staged_field(key, event.attempt)
            batch.staged_checks[group.require_field(keys.staged, field_name)] = position
            group.hmove(keys.staged, field_name, keys.item_out, key)
        else:
            group.hset(keys.item_out, {key: encode_output(output)})

    def _write_outcomes(
        self,
        stored: StoredRun,
        before: dict[str, str],
        outcomes: list[Outcome],
        keys: RunKeys,
        group: Group,
    ) -> None:
        run = stored.run
        shard = self._keys.shard_for_run(run.run_id)
        tasks: list[Task] = []
        timers: list[Timer] = []
        changed: dict[int, None] = {}
        items_changed: dict[tuple[int, int], None] = {}
        items_ended: dict[tuple[int, int], ItemRun] = {}
        marks: dict[tuple[int, int], str | None] = {}
        for outcome in outcomes:
            outbox(run, outcome.commands, tasks, timers)
            changed.update(dict.fromkeys(outcome.changed))
            if outcome.items_changed is not None:
                items_changed.update(dict.fromkeys(outcome.items_changed))
            if outcome.items_ended is not None:
                items_ended.update(((index, item), state) for index, item, state in outcome.items_ended)
            if outcome.items_marked is not None:
                marks.update(((index, item), mark) for index, item, mark in outcome.items_marked)
            if outcome.resumed:  # an ended run runs again (a redrive): its retention is lifted
                for key in keys.all():
                    group.persist(key)
        nodes = run.nodes
        group.hset(keys.nodes, {run.plan.nodes[i].id: encode_node(nodes[i]) for i in changed})
        if items_changed or items_ended:
            self._write_items(run, items_changed, items_ended, keys, group)
        if marks:
            specs = run.plan.nodes
            fields = {mark_field(specs[index].id, item): mark for (index, item), mark in marks.items()}
            group.hset(keys.nodes, {name: mark for name, mark in fields.items() if mark is not None})
            group.hdel(keys.nodes, [name for name, mark in fields.items() if mark is None])
        after = progress_fields(run, stored.version + 1)
        group.hset(keys.meta, {name: value for name, value in after.items() if before[name] != value})
        group.rpush(keys.history, [encode_entry(outcome.entry) for outcome in outcomes])
        group.publish(shard.changes, change_word(run.run_id, run.status))  # wakes the run's readers
        for task in tasks:
            group.xadd(shard.tasks_of(task.queue), encode_task(task))
        for timer in timers:
            group.zadd(shard.timers, timer.due_at, encode_timer(timer.event))
        status_before = before[STATUS]
        if run.status != status_before:
            group.zrem(shard.run_index(status_before), run.run_id)
            group.zadd(shard.run_index(run.status.value), run.created_at, run.run_id)
        if run.status is RunStatus.COMPLETED and run.plan.output is not None:
            group.hset(keys.meta, run_output_field(run))
        if run.status.is_final:
            for key in keys.all():
                group.expire(key, self._retention)

    def _write_items(
        self,
        run: Run,
        changed: dict[tuple[int, int], None],
        ended: dict[tuple[int, int], ItemRun],
        keys: RunKeys,
        group: Group,
    ) -> None:
        """Items in flight are stored beside the nodes; an item that ended moves to ``items``."""
        specs, nodes = run.plan.nodes, run.nodes
        live: dict[str, str] = {}
        for index, item in changed:
            items = nodes[index].items
            state = None if items is None else items.live.get(item)
            if state is not None:
                live[item_key(specs[index].id, item)] = encode_item(state)
        group.hset(keys.nodes, live)
        if ended:
            names = [item_key(specs[index].id, item) for index, item in ended]
            group.hdel(keys.nodes, [name for name in names if name not in live])
            group.hset(
                keys.items,
                {name: encode_item(state) for name, state in zip(names, ended.values(), strict=True)},
            )

    async def _commit(
        self, commits: list[Commit], commands: list[Command], lost: set[int]
    ) -> list[_RunBatch]:
        """Run the commits; the batches whose checks failed (to decide again on fresh state)."""
        try:
            replies = await self._script.execute(commits)
        except BaseException:
            # Whether anything was written is unknown: what this process holds may be ahead of Redis.
            for commit in commits:
                for group in commit.groups:
                    self.cache.drop(group.tag.run_id)
            raise
        again: list[_RunBatch] = []
        failure: Exception | None = None
        for commit, reply in zip(commits, replies, strict=True):
            if isinstance(reply, Exception):
                failure = reply  # the other shards' commits stand: take them in first
                for group in commit.groups:
                    self.cache.drop(group.tag.run_id)
                continue
            for group, failed_check in zip(commit.groups, reply, strict=True):
                batch: _RunBatch = group.tag
                if failed_check == 0:
                    self._committed(batch)
                    commands.extend(batch.commands)
                    continue
                self.cache.drop(batch.run_id)
                batch.reloaded = True  # decided again on what is stored
                if failed_check in batch.staged_checks:
                    lost.add(batch.staged_checks[failed_check])
                again.append(batch)
        if failure is not None:
            raise AdapterError(f"a commit failed: {failure}") from failure
        return again

    def _committed(self, batch: _RunBatch) -> None:
        stored = self.cache.get(batch.run_id)
        if stored is None or not batch.applied:
            return
        if stored.run.status.is_final:
            self.cache.drop(batch.run_id)  # nothing more will change it
        else:
            self.cache.put(StoredRun(stored.run, stored.version + 1))


def _is_staged(event: Event) -> bool:
    return type(event) is NodeSucceeded and event.output is STAGED


def _node_of(event: Event) -> str | None:
    return getattr(event, "node_id", None)


def _staged(event: Event) -> str:
    assert isinstance(event, NodeSucceeded)
    return staged_field(event.node_id, event.attempt)
