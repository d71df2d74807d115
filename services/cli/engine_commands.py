"""Commands that run the engine in this process: ``validate``, ``run``, the long-running roles
(``api``, ``orchestrator``, ``worker``, ``web``, ``up``) and the backend ``check``."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated, Any, Literal

import typer
from rich.console import Console

from domain.statuses import RunStatus
from domain.validation import build_plan
from services.application.errors import EXIT_COMPLETED, EXIT_FAILED, EXIT_INVALID
from services.application.run_view import run_view
from services.cli.files import read_json_file, read_run_input
from services.cli.options import FileArgument, InputFile, InputJson
from services.cli.progress import RunProgress
from services.cli.report import print_human, print_json
from services.cli.run_command import run_workflow
from services.cli.serve import Roles, serve
from services.cli.typer_app import guarded, stderr
from services.container import Container, close_backend, open_backend
from services.runtime.logs import configure_logging
from services.runtime.serving import event_loop_factory
from services.worker.registry import import_handler_modules

Workers = Annotated[int, typer.Option(min=1, max=256, help="Worker loops in this process.")]
Concurrency = Annotated[
    int | None,
    typer.Option("--concurrency", min=1, max=10_000, help="Attempts run at once (WORKER_CONCURRENCY)."),
]


def _container(default_backend: Literal["memory", "redis"] = "memory") -> Container:
    container = Container()
    settings = container.settings()
    container.backend.override(settings.backend_for(default_backend))
    configure_logging(settings.log_level, settings.log_format)
    import_handler_modules(settings.handler_modules())
    return container


def validate(file: FileArgument) -> None:
    """Check a workflow definition; list every problem with its JSON path."""
    container = _container()

    def check() -> str:
        plan = build_plan(read_json_file(file), container.settings().limits(), container.registry().names())
        edges = sum(len(spec.parents) for spec in plan.nodes)
        return (
            f"valid: workflow '{plan.name}' with {len(plan)} nodes, {edges} dependencies, "
            f"{len(plan.roots)} root(s)"
        )

    typer.echo(guarded(check))


def run(
    file: FileArgument,
    input_json: InputJson = None,
    input_file: InputFile = None,
    workers: Workers = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON document.")] = False,
) -> None:
    """Run a workflow to the end in this process (embedded backend), showing progress.

    Exit 0 when the run COMPLETED, 1 when it FAILED, 2 for an invalid definition or input.
    """
    container = _container()
    definition = guarded(lambda: read_json_file(file))
    run_input: Any = guarded(lambda: read_run_input(input_json, input_file))
    progress = RunProgress(stderr, enabled=not as_json or stderr.is_terminal)
    finished = guarded(lambda: asyncio.run(run_workflow(container, definition, run_input, workers, progress)))
    view = run_view(finished)
    if as_json:
        print_json(view)
    else:
        print_human(Console(), view)
    raise typer.Exit(EXIT_COMPLETED if view.status is RunStatus.COMPLETED else EXIT_FAILED)


def _serve(roles: Roles, default_backend: Literal["memory", "redis"]) -> None:
    container = _container(default_backend)
    if container.backend() == "memory" and not (roles.api and roles.orchestrator and roles.workers):
        stderr.print(
            "error: the memory backend keeps everything inside one process; this role needs "
            "ENGINE_BACKEND=redis (or use `dag-service up` for everything in one process)",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_INVALID)
    guarded(lambda: asyncio.run(serve(container, roles), loop_factory=event_loop_factory()))


def _with_concurrency(concurrency: int | None) -> None:
    if concurrency is not None:
        os.environ["WORKER_CONCURRENCY"] = str(concurrency)


def api() -> None:
    """Serve the HTTP API (Redis backend unless ENGINE_BACKEND says otherwise)."""
    _serve(Roles(api=True), "redis")


def orchestrator() -> None:
    """Apply events and dispatch ready nodes; run as many as you like."""
    _serve(Roles(orchestrator=True), "redis")


def worker(concurrency: Concurrency = None) -> None:
    """Execute tasks; run as many as you like. SIGTERM: finish what is held, then exit."""
    _with_concurrency(concurrency)
    _serve(Roles(workers=1), "redis")


def web() -> None:
    """The HTTP API and an orchestrator in one process, as in the seed."""
    _serve(Roles(api=True, orchestrator=True), "redis")


def up(workers: Workers = 1, concurrency: Concurrency = None) -> None:
    """Everything in one process: API, orchestrator and workers (embedded backend by default)."""
    _with_concurrency(concurrency)
    _serve(Roles(api=True, orchestrator=True, workers=workers), "memory")


def check() -> None:
    """Exit 0 if the backend answers, 3 if not (for container health checks)."""
    container = _container("redis")

    async def probe() -> None:
        await open_backend(container)
        await close_backend(container)

    guarded(lambda: asyncio.run(probe()))
    typer.echo(f"ok: {container.backend()} backend answers")


COMMANDS = (validate, run, api, orchestrator, worker, web, up, check)
"""In the order ``dag-service --help`` lists them."""
