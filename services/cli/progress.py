"""Live progress of a run on the terminal (rich): nodes done / total and the nodes in flight."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from domain.run import Run
from domain.statuses import NodeStatus

_SHOWN_RUNNING = 4


def _running_names(run: Run) -> str:
    if run.in_flight == 0:
        return ""
    names = [
        spec.id for spec, node in run.node_states() if node.status in (NodeStatus.QUEUED, NodeStatus.RUNNING)
    ]
    shown = ", ".join(names[:_SHOWN_RUNNING])
    more = len(names) - _SHOWN_RUNNING
    return f"running: {shown}" + (f" (+{more} more)" if more > 0 else "")


class RunProgress:
    def __init__(self, console: Console, enabled: bool) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[running]}"),
            console=console,
            disable=not enabled,
            transient=False,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RunProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def update(self, run: Run) -> None:
        if self._task is None:
            self._task = self._progress.add_task(run.plan.name, total=len(run.nodes), running="")
        self._progress.update(
            self._task,
            completed=run.finished_count,
            running=_running_names(run),
            description=f"{run.plan.name} {run.status.value}",
        )

    # For a run followed from afar (``watch``): only counts are known.

    def start_run(self, description: str, total: int) -> None:
        self._task = self._progress.add_task(description, total=total, running="")

    def advance_to(self, finished: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=finished)
