"""Worker pools as the live workers announce them (``domain.ports.WorkerDirectory``): what each
queue serves, the warnings a registration gets for what no live worker serves, and the queues with
no worker (which the run view names). Read only: nothing here decides a run."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from domain.errors import Problem
from domain.plan import WorkflowPlan
from domain.ports import WorkerAnnouncement

MAX_WARNINGS = 100
"""A definition of 100,000 nodes on one missing queue gets one warning, not 100,000: they are
grouped by queue and by (queue, handler), and at most this many are given."""


@dataclass(frozen=True, slots=True)
class ServedHandler:
    queue: str
    handler: str
    workers: int
    """Live workers of ``queue`` that announced ``handler``."""


type Serving = dict[str, dict[str, int]]
"""Queue -> handler -> live workers that announced it (a queue with workers but no handler maps
to an empty dict)."""


def serving(live: Iterable[WorkerAnnouncement]) -> Serving:
    served: Serving = {}
    for worker in live:
        for queue in worker.queues:
            handlers = served.setdefault(queue, {})
            for name in worker.handlers:
                handlers[name] = handlers.get(name, 0) + 1
    return served


def served_handlers(live: Iterable[WorkerAnnouncement]) -> list[ServedHandler]:
    """Every (queue, handler) some live worker serves, with how many, sorted."""
    return [
        ServedHandler(queue, name, count)
        for queue, handlers in sorted(serving(live).items())
        for name, count in sorted(handlers.items())
    ]


def live_queues(live: Iterable[WorkerAnnouncement]) -> frozenset[str]:
    return frozenset(queue for worker in live for queue in worker.queues)


def registration_warnings(
    plan: WorkflowPlan, live: Collection[WorkerAnnouncement], builtins: Collection[str]
) -> list[Problem]:
    """What no live worker serves: a queue without a worker (its tasks wait until one starts), and
    a handler that is no built-in and that no live worker of its queue announced (its attempts
    fail with ``UnknownHandler`` unless a worker that has it starts first). Warnings, not problems:
    a definition may be registered before its workers start."""
    served = serving(live)
    warnings: dict[tuple[str, str | None], Problem] = {}
    for spec in plan.nodes:
        handlers = served.get(spec.queue)
        path = f"$.dag.nodes[{spec.index}]"
        if handlers is None and (spec.queue, None) not in warnings:
            warnings[(spec.queue, None)] = Problem(
                f"{path}.queue",
                f"no live worker serves queue '{spec.queue}' (node '{spec.id}'): its tasks wait until "
                "a worker of that queue starts",
            )
        elif handlers is not None and spec.handler not in handlers and spec.handler not in builtins:
            known = ", ".join(sorted(handlers)) or "none"
            warnings.setdefault(
                (spec.queue, spec.handler),
                Problem(
                    f"{path}.handler",
                    f"no live worker of queue '{spec.queue}' has announced handler '{spec.handler}' "
                    f"(node '{spec.id}'; they serve: {known}): its attempts fail with UnknownHandler "
                    "unless a worker that has it starts first",
                ),
            )
        if len(warnings) >= MAX_WARNINGS:
            break
    return list(warnings.values())
