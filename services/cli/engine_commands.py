"""Commands that run the engine in this process: ``validate``, ``run``, the long-running roles
(``api``, ``orchestrator``, ``worker``, ``web``, ``up``) and the backend ``check``.

The engine (pydantic, dependency-injector, redis, fastapi) is imported when one of these commands
runs, not when ``dag-service`` starts: a client command never pays for it.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from services.application.errors import EXIT_COMPLETED, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID
from services.cli.options import FileArgument, InputFile, InputJson
from services.cli.typer_app import guarded, print_line, stderr

if TYPE_CHECKING:
    from services.cli.serve import Roles
    from services.container import Container

Workers = Annotated[int, typer.Option(min=1, max=256, help="Worker loops in this process.")]
Concurrency = Annotated[
    int | None,
    typer.Option("--concurrency", min=1, max=10_000, help="Attempts run at once (WORKER_CONCURRENCY)."),
]
Handlers = Annotated[
    list[str] | None,
    typer.Option(
        "--handlers",
        help="A module to import for its @handler functions (repeat for more), beside "
        "WORKER_HANDLER_MODULES. The working directory is importable.",
        show_default=False,
    ),
]
Queues = Annotated[
    str | None,
    typer.Option(
        "--queues",
        help="Comma-separated queues (worker pools) to take tasks from (WORKER_QUEUES; default: default).",
        show_default=False,
    ),
]
Host = Annotated[
    str | None, typer.Option("--host", help="Address the API listens on (API_HOST).", show_default=False)
]
Port = Annotated[
    int | None,
    typer.Option("--port", min=1, max=65535, help="Port the API listens on (API_PORT).", show_default=False),
]


def _container(
    default_backend: Literal["memory", "redis"] = "memory",
    handlers: list[str] | None = None,
    default_log_level: str = "WARNING",
) -> Container:
    """The composition root for this command; a configuration mistake leaves in one line.
    ``default_log_level`` is the level when ``LOG_LEVEL`` is unset."""
    from services.container import Container
    from services.runtime.logs import configure_logging
    from services.worker.registry import import_handler_modules

    container = Container()
    settings = guarded(container.settings)
    container.backend.override(settings.backend_for(default_backend))
    configure_logging(settings.log_level or default_log_level, settings.log_format)
    guarded(lambda: import_handler_modules(settings.handler_modules(), "WORKER_HANDLER_MODULES"))
    guarded(lambda: import_handler_modules(handlers or [], "--handlers"))
    return container


def validate(file: FileArgument, handlers: Handlers = None) -> None:
    """Check a workflow definition; list every problem with its JSON path."""
    from domain.validation import build_plan
    from services.cli.files import read_json_file

    container = _container(handlers=handlers)

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
    full: Annotated[bool, typer.Option("--full", help="Print every output whole (not shortened).")] = False,
    handlers: Handlers = None,
) -> None:
    """Run a workflow to the end in this process (embedded backend), showing progress.

    Exit 0 when the run COMPLETED, 1 when it FAILED, 2 for an invalid definition or input, 130
    when interrupted (Ctrl-C).
    """
    import asyncio

    from domain.statuses import RunStatus
    from services.application.run_view import run_view
    from services.cli.files import read_json_file, read_run_input
    from services.cli.progress import RunProgress
    from services.cli.report import print_human, print_json
    from services.cli.run_command import run_workflow

    container = _container(handlers=handlers)
    definition = guarded(lambda: read_json_file(file))
    run_input: Any = guarded(lambda: read_run_input(input_json, input_file))
    progress = RunProgress(stderr(), enabled=not as_json or stderr().is_terminal)
    try:
        finished = guarded(
            lambda: asyncio.run(run_workflow(container, definition, run_input, workers, progress))
        )
    except KeyboardInterrupt:
        print_line("interrupted: the run was abandoned (the embedded engine keeps nothing)")
        sys.stdout.flush()
        sys.stderr.flush()
        # At once: a sync handler still sleeping in a worker thread would hold a normal exit
        # (threads of an executor are joined at exit) until it returned.
        os._exit(EXIT_INTERRUPTED)
    view = run_view(finished)
    if as_json:
        print_json(view)
    else:
        from rich.console import Console

        print_human(Console(), view, full=full)
    raise typer.Exit(EXIT_COMPLETED if view.status is RunStatus.COMPLETED else EXIT_FAILED)


def _serve(
    roles: Roles,
    default_backend: Literal["memory", "redis"],
    *,
    handlers: list[str] | None = None,
    host: str | None = None,
    port: int | None = None,
) -> None:
    import asyncio

    from services.cli.serve import serve
    from services.runtime.collector import set_for_serving
    from services.runtime.serving import event_loop_factory

    # INFO for a long-running role: its start-up line says what it is, where it listens.
    container = _container(default_backend, handlers, default_log_level="INFO")
    if host is not None or port is not None:
        settings = container.settings()
        listen = {"api_host": host or settings.api_host, "api_port": port or settings.api_port}
        container.settings.override(settings.model_copy(update=listen))
    if container.backend() == "memory" and not (roles.api and roles.orchestrator and roles.workers):
        print_line(
            "error: the memory backend keeps everything inside one process; this role needs "
            "ENGINE_BACKEND=redis (or use `dag-service up` for everything in one process)"
        )
        raise typer.Exit(EXIT_INVALID)
    set_for_serving()
    guarded(lambda: asyncio.run(serve(container, roles), loop_factory=event_loop_factory()))


def _with_concurrency(concurrency: int | None, queues: str | None = None) -> None:
    """The worker options stand for their settings (so a bad value is reported like one)."""
    if concurrency is not None:
        os.environ["WORKER_CONCURRENCY"] = str(concurrency)
    if queues is not None:
        os.environ["WORKER_QUEUES"] = queues


def _roles(api: bool = False, orchestrator: bool = False, workers: int = 0) -> Roles:
    from services.cli.serve import Roles

    return Roles(api=api, orchestrator=orchestrator, workers=workers)


def api(host: Host = None, port: Port = None, handlers: Handlers = None) -> None:
    """Serve the HTTP API (Redis backend unless ENGINE_BACKEND says otherwise)."""
    _serve(_roles(api=True), "redis", handlers=handlers, host=host, port=port)


def orchestrator() -> None:
    """Apply events and dispatch ready nodes; run as many as you like."""
    _serve(_roles(orchestrator=True), "redis")


def worker(concurrency: Concurrency = None, handlers: Handlers = None, queues: Queues = None) -> None:
    """Execute tasks of its queues; run as many as you like. SIGTERM: finish what is held, then exit."""
    _with_concurrency(concurrency, queues)
    _serve(_roles(workers=1), "redis", handlers=handlers)


def web(host: Host = None, port: Port = None, handlers: Handlers = None) -> None:
    """The HTTP API and an orchestrator in one process, as in the seed."""
    _serve(_roles(api=True, orchestrator=True), "redis", handlers=handlers, host=host, port=port)


def up(
    workers: Workers = 1,
    concurrency: Concurrency = None,
    host: Host = None,
    port: Port = None,
    handlers: Handlers = None,
    queues: Queues = None,
) -> None:
    """Everything in one process: API, orchestrator and workers (embedded backend by default)."""
    _with_concurrency(concurrency, queues)
    roles = _roles(api=True, orchestrator=True, workers=workers)
    _serve(roles, "memory", handlers=handlers, host=host, port=port)


def check() -> None:
    """Exit 0 if the backend answers, 3 if not (for container health checks)."""
    import asyncio

    from services.container import close_backend, open_backend

    container = _container("redis")

    async def probe() -> None:
        await open_backend(container)
        await close_backend(container)

    guarded(lambda: asyncio.run(probe()))
    typer.echo(f"ok: {container.backend()} backend answers")


COMMANDS = (validate, run, api, orchestrator, worker, web, up, check)
"""In the order ``dag-service --help`` lists them."""
