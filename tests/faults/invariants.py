"""The invariants every fault test asserts over its runs, in one place (``check_invariants``).

Sources, each checked against the others:

- the definition each run was started with (kept by the test, not read back from Redis);
- the final state in Redis (run meta, node states, outputs);
- the task streams, read in full through the "audit" group (nothing is trimmed while it exists):
  how many times each (run, node, attempt) was dispatched;
- the run's history (one entry per applied event);
- the ledger the ``fault`` handler writes outside Redis (which executions started and ended).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from distributed_support import FINAL_STATES
from fault_support import FaultCluster, LedgerEntry

from domain.history import EntryKind, HistoryEntry
from domain.node_state import NodeRun

FINAL_NODE = ("COMPLETED", "FAILED", "SKIPPED", "CANCELLED")


@dataclass
class Figures:
    runs: int = 0
    nodes: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    node_statuses: Counter[str] = field(default_factory=Counter)
    dispatches: int = 0
    executions: int = 0
    """Handler executions in the ledger (re-executions after a crash included)."""
    repeated_executions: int = 0
    """Executions beyond one per dispatched attempt: the "at least once" part."""
    duplicated_completions: int = 0
    lost: int = 0
    histories: int = 0
    """Runs whose history the engine kept (and was checked)."""


def parents_of(definition: Mapping[str, Any]) -> dict[str, list[str]]:
    return {spec["id"]: list(spec["dependencies"]) for spec in definition["dag"]["nodes"]}


def check_invariants(
    engine: FaultCluster,
    run_ids: Iterable[str],
    *,
    expected: Mapping[str, str] | None = None,
    ledger: bool = True,
    drained: bool = True,
    injected: Counter[tuple[str, str, int]] | None = None,
) -> Figures:
    """Assert, for every run: it is final (``expected``: its status, by run id); every node's
    status agrees with its parents'; every attempt was dispatched exactly once and no node was
    completed twice; children were dispatched and ran after their parents; every completed node's
    output came from a handler execution recorded in the ledger (``ledger``); and (``drained``)
    nothing is left pending on any stream. Task entries the test wrote itself are ``injected``
    (per run, node, attempt). Returns the figures it counted."""
    run_ids = list(run_ids)
    figures = Figures(runs=len(run_ids))
    dispatched = engine.dispatches() - (injected or Counter()) if engine.audit else None
    executions: dict[tuple[str, str], list[LedgerEntry]] = defaultdict(list)
    if ledger:
        for entry in engine.ledger.entries():
            executions[(entry.run, entry.node)].append(entry)
    problems: list[str] = []

    for run_id in run_ids:
        definition = engine.definitions[run_id]
        parents = parents_of(definition)
        handlers = {spec["id"]: spec["handler"] for spec in definition["dag"]["nodes"]}
        # A map's items are checked by the history (one completion each), not as attempts of a node.
        maps = {spec["id"] for spec in definition["dag"]["nodes"] if "for_each" in spec}
        run = engine.inspect.run(run_id)
        status = None if run is None else run.status
        figures.statuses[str(status)] += 1
        if status not in FINAL_STATES:
            figures.lost += 1
            problems.append(f"{run_id}: not final ({status})")
            continue
        if expected is not None and status != expected[run_id]:
            problems.append(f"{run_id}: {status}, expected {expected[run_id]}")
        assert run is not None
        states = {spec.id: state for spec, state in run.node_states()}
        outputs = run.outputs
        history = engine.history(run_id)
        if set(states) != set(parents):
            problems.append(f"{run_id}: nodes {sorted(states)} != definition's {sorted(parents)}")
            continue
        if status != "CANCELLED" and (run.unfinished, run.in_flight) != (0, 0):
            problems.append(f"{run_id}: unfinished={run.unfinished} in_flight={run.in_flight}")

        for node_id, state in states.items():
            figures.nodes += 1
            node_status, attempts = state.status, state.attempt
            figures.node_statuses[node_status] += 1
            where = f"{run_id}/{node_id}"
            parent_states = [states[parent].status for parent in parents[node_id]]
            # Fan-in counters: while the node is undecided, exactly its parents not ended, failed
            # (or cancelled) and skipped (a repeated completion would go below); once decided they
            # stop moving, so they can only be ahead of the parents' ends, never behind.
            unended = sum(parent_status not in FINAL_NODE for parent_status in parent_states)
            failed = sum(parent_status in ("FAILED", "CANCELLED") for parent_status in parent_states)
            skipped = sum(parent_status == "SKIPPED" for parent_status in parent_states)
            counted = (state.waiting_on, state.failed_parents, state.skipped_parents)
            if attempts == 0 and node_status == "PENDING" and counted != (unended, failed, skipped):
                problems.append(
                    f"{where}: counts (unfinished, failed, skipped) parents {counted}, "
                    f"they are {(unended, failed, skipped)}"
                )
            elif state.waiting_on < unended or state.waiting_on > len(parent_states):
                problems.append(f"{where}: waits on {state.waiting_on} parent(s), {unended} have not ended")
            if node_status in ("PENDING", "QUEUED", "RUNNING"):
                problems.append(f"{where}: {node_status} in a final run")
            if node_status == "SKIPPED" and attempts != 0:
                problems.append(f"{where}: SKIPPED after {attempts} attempt(s)")
            if attempts > 0 and any(parent_status != "COMPLETED" for parent_status in parent_states):
                # Dispatched only once every parent completed (the fault suite's workflows keep the
                # default trigger rule). (When, relative to each parent's
                # completion, is checked on the history and the ledger: the times stored are the
                # reporters' clocks, and two parents' results may be applied in either order.)
                problems.append(f"{where}: dispatched with unfinished parents {parent_states}")
            if (node_status == "COMPLETED") != (node_id in outputs):
                problems.append(
                    f"{where}: {node_status} {'with' if node_id in outputs else 'without'} output"
                )
            if node_id in maps:
                continue
            if dispatched is not None:
                counts = {a: dispatched[(run_id, node_id, a)] for a in range(1, attempts + 2)}
                figures.dispatches += sum(counts.values())
                if counts != {**dict.fromkeys(range(1, attempts + 1), 1), attempts + 1: 0}:
                    problems.append(f"{where}: dispatches per attempt {counts}, {attempts} attempt(s)")
            if ledger and handlers[node_id] == "fault":
                ran = executions.get((run_id, node_id), [])
                starts = [entry for entry in ran if entry.event == "start"]
                figures.executions += len(starts)
                figures.repeated_executions += max(0, len(starts) - attempts)
                if node_status == "COMPLETED":
                    output = outputs[node_id]
                    producer = [
                        entry
                        for entry in ran
                        if entry.event == "end"
                        and entry.execution == output["x"]
                        and entry.pid == output["pid"]
                    ]
                    if output["key"] != f"{run_id}:{node_id}:{attempts}" or not producer:
                        problems.append(
                            f"{where}: output {output} not from a recorded execution of the attempt"
                        )
                    # Ran after its parents' recorded outputs were produced (clocks of one machine).
                    first_start = min((entry.at for entry in starts), default=None)
                    for parent in parents[node_id]:
                        parent_output = outputs.get(parent, {})
                        parent_end = [
                            entry.at
                            for entry in executions.get((run_id, parent), [])
                            if entry.event == "end" and entry.execution == parent_output.get("x")
                        ]
                        if parent_end and first_start is not None and first_start < min(parent_end):
                            problems.append(f"{where}: started before {parent}'s output was produced")
                if attempts > 0 and node_status in ("COMPLETED", "FAILED"):
                    started_attempts = {entry.attempt for entry in starts}
                    if node_status == "COMPLETED" and attempts not in started_attempts:
                        problems.append(f"{where}: attempt {attempts} completed, never ran per the ledger")

        figures.histories += 1
        problems += _history_problems(run_id, history, states, parents, str(status), figures, maps)

    if drained:
        for kind in ("tasks", "events"):
            if engine.pending_count(kind):
                problems.append(f"{engine.pending_count(kind)} {kind} entries still pending")
    assert not problems, f"{len(problems)} invariant violation(s):\n" + "\n".join(problems[:40])
    return figures


def _history_problems(
    run_id: str,
    history: list[HistoryEntry],
    states: Mapping[str, NodeRun],
    parents: Mapping[str, list[str]],
    status: str,
    figures: Figures,
    maps: Collection[str] = (),
) -> list[str]:
    """One completion per completed node, one dispatch per attempt, children after parents, one end
    per life of the run (a redrive starts another)."""
    problems: list[str] = []
    succeeded = Counter(
        entry.node_id for entry in history if entry.kind is EntryKind.NODE_SUCCEEDED and entry.error is None
    )
    # One end per life of the run: a redrive starts the next life of an ended run.
    lives: list[list[str]] = [[]]
    for entry in history:
        if entry.kind is EntryKind.REDRIVE_REQUESTED:
            lives.append([])
        if entry.run_status:
            lives[-1].append(entry.run_status)
    ends = [end for life in lives for end in life]
    if any(len(life) != 1 for life in lives) or ends[-1:] != [status]:
        problems.append(f"{run_id}: history ends {ends} over {len(lives)} life/lives, the run is {status}")
    completed_at: dict[str, int] = {}
    dispatched_count: Counter[str] = Counter()
    for position, entry in enumerate(history):
        if entry.kind is EntryKind.NODE_SUCCEEDED and entry.node_id is not None and entry.error is None:
            completed_at.setdefault(entry.node_id, position)
            # A map completes in the entry of its last item: any item's success stands for it here
            # (that the children saw every item is the map tests' own assertion).
            map_id, _, item = entry.node_id.partition("#")
            if item and map_id in maps:
                completed_at.setdefault(map_id, position)
        for child in entry.dispatched:
            dispatched_count[child] += 1
            late = [p for p in parents[child] if completed_at.get(p, len(history)) > position]
            if late and not (entry.kind is EntryKind.RETRY_DUE and entry.node_id == child):
                problems.append(f"{run_id}/{child}: dispatched (history #{position}) before {late} completed")
    for node_id, state in states.items():
        if node_id in maps:
            problems += _item_problems(run_id, node_id, state, succeeded, figures)
        want = 1 if state.status == "COMPLETED" and node_id not in maps else 0
        if succeeded[node_id] != want:
            figures.duplicated_completions += max(0, succeeded[node_id] - 1)
            problems.append(f"{run_id}/{node_id}: {succeeded[node_id]} completion(s) in the history")
        if dispatched_count[node_id] != state.attempt:
            problems.append(
                f"{run_id}/{node_id}: dispatched {dispatched_count[node_id]}x, {state.attempt} attempt(s)"
            )
    return problems


def _item_problems(
    run_id: str, node_id: str, state: NodeRun, succeeded: Counter[str | None], figures: Figures
) -> list[str]:
    """Each item of a completed map completed once (its failures, tolerated, not at all)."""
    items = state.items
    if items is None or state.status != "COMPLETED":
        return []
    keys = [key for key in succeeded if key is not None and key.startswith(f"{node_id}#")]
    repeated = sum(succeeded[key] - 1 for key in keys)
    figures.duplicated_completions += repeated
    if (
        repeated
        or len(keys) != items.succeeded
        or items.succeeded + items.failed + items.skipped != items.total
    ):
        return [f"{run_id}/{node_id}: {len(keys)} items completed ({repeated} twice), state {items}"]
    return []
