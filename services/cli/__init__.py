"""``dag-service``: the command line. Each command maps errors to exit codes through one table."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console

from domain.errors import InvalidDefinition, InvalidInput
from domain.statuses import RunStatus
from domain.validation import build_plan
from services.application.errors import (
    EXIT_COMPLETED,
    EXIT_FAILED,
    EXIT_INVALID,
    ApiError,
    outcome_of,
)
from services.application.run_view import run_view
from services.cli.client import (
    ApiClient,
    api_error_lines,
    default_api_url,
    event_line,
    print_document,
    print_document_line,
    print_status,
)
from services.cli.files import read_json_file, read_run_input
from services.cli.progress import RunProgress
from services.cli.report import print_human, print_json
from services.cli.run_command import run_workflow
from services.cli.serve import Roles, serve
from services.container import Container, close_backend, open_backend
from services.runtime.serving import event_loop_factory
from services.worker.registry import import_handler_modules

app = typer.Typer(
    name="dag-service",
    help="Event-driven DAG workflow engine: validate and run JSON workflows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
_err = Console(stderr=True)


def _report_error(error: Exception) -> int:
    """Print an expected error in plain words and give its exit code; re-raise anything else."""
    outcome = outcome_of(error)
    if outcome is None:
        raise error
    lines = [f"error: {error}"]
    if isinstance(error, InvalidDefinition | InvalidInput):
        what = "workflow definition" if isinstance(error, InvalidDefinition) else "run input"
        if len(error.problems) == 1:
            lines = [f"error: invalid {what}: {error.problems[0]}"]
        else:
            lines = [f"error: invalid {what}: {len(error.problems)} problems"]
            lines += [f"  {problem}" for problem in error.problems]
    elif isinstance(error, ApiError):
        lines = api_error_lines(error)
    for line in lines:
        _err.print(line, markup=False, highlight=False, soft_wrap=True)
    return outcome.exit_code


def _guarded[T](action: Callable[[], T]) -> T:
    try:
        return action()
    except Exception as error:  # every expected error leaves through the table, others re-raise
        raise typer.Exit(_report_error(error)) from None


def _container(default_backend: Literal["memory", "redis"] = "memory") -> Container:
    container = Container()
    settings = container.settings()
    container.backend.override(settings.backend_for(default_backend))
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    import_handler_modules(settings.handler_modules())
    return container


FileArgument = Annotated[Path, typer.Argument(help="Workflow definition (JSON).", show_default=False)]


@app.command()
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

    typer.echo(_guarded(check))


@app.command()
def run(
    file: FileArgument,
    input_json: Annotated[
        str | None, typer.Option("--input", help="Run input as a JSON object.", show_default=False)
    ] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input-file", help="Read the run input from a JSON file.")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=256, help="Worker loops in this process.")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as one JSON document.")] = False,
) -> None:
    """Run a workflow to the end in this process (embedded backend), showing progress.

    Exit 0 when the run COMPLETED, 1 when it FAILED, 2 for an invalid definition or input.
    """
    container = _container()
    definition = _guarded(lambda: read_json_file(file))
    run_input: Any = _guarded(lambda: read_run_input(input_json, input_file))
    progress = RunProgress(_err, enabled=not as_json or _err.is_terminal)
    finished = _guarded(
        lambda: asyncio.run(run_workflow(container, definition, run_input, workers, progress))
    )
    view = run_view(finished)
    if as_json:
        print_json(view)
    else:
        print_human(Console(), view)
    raise typer.Exit(EXIT_COMPLETED if view.status is RunStatus.COMPLETED else EXIT_FAILED)


def _serve(roles: Roles, default_backend: Literal["memory", "redis"]) -> None:
    container = _container(default_backend)
    if container.backend() == "memory" and not (roles.api and roles.orchestrator and roles.workers):
        _err.print(
            "error: the memory backend keeps everything inside one process; this role needs "
            "ENGINE_BACKEND=redis (or use `dag-service up` for everything in one process)",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_INVALID)
    _guarded(lambda: asyncio.run(serve(container, roles), loop_factory=event_loop_factory()))


Concurrency = Annotated[
    int | None,
    typer.Option("--concurrency", min=1, max=10_000, help="Attempts run at once (WORKER_CONCURRENCY)."),
]


def _with_concurrency(concurrency: int | None) -> None:
    if concurrency is not None:
        os.environ["WORKER_CONCURRENCY"] = str(concurrency)


@app.command()
def api() -> None:
    """Serve the HTTP API (Redis backend unless ENGINE_BACKEND says otherwise)."""
    _serve(Roles(api=True), "redis")


@app.command()
def orchestrator() -> None:
    """Apply events and dispatch ready nodes; run as many as you like."""
    _serve(Roles(orchestrator=True), "redis")


@app.command()
def worker(concurrency: Concurrency = None) -> None:
    """Execute tasks; run as many as you like. SIGTERM: finish what is held, then exit."""
    _with_concurrency(concurrency)
    _serve(Roles(workers=1), "redis")


@app.command()
def web() -> None:
    """The HTTP API and an orchestrator in one process, as in the seed."""
    _serve(Roles(api=True, orchestrator=True), "redis")


@app.command()
def up(
    workers: Annotated[int, typer.Option(min=1, max=256, help="Worker loops in this process.")] = 1,
    concurrency: Concurrency = None,
) -> None:
    """Everything in one process: API, orchestrator and workers (embedded backend by default)."""
    _with_concurrency(concurrency)
    _serve(Roles(api=True, orchestrator=True, workers=workers), "memory")


@app.command()
def check() -> None:
    """Exit 0 if the backend answers, 3 if not (for container health checks)."""
    container = _container("redis")

    async def probe() -> None:
        await open_backend(container)
        await close_backend(container)

    _guarded(lambda: asyncio.run(probe()))
    typer.echo(f"ok: {container.backend()} backend answers")


# Client commands: talk to a running API (`dag-service up`, `web` or `api`).

ApiUrl = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        help="The API, prefix included. Default: $DAG_API_URL, else http://localhost:8000 + API_STR. "
        "A bearer token is read from $DAG_API_TOKEN.",
        show_default=False,
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the API's answer as one JSON document.")]


def _client(api_url: str | None) -> ApiClient:
    return ApiClient(api_url or default_api_url())


@app.command()
def submit(file: FileArgument, api_url: ApiUrl = None, as_json: JsonFlag = False) -> None:
    """Register a workflow definition with the API; print its execution id.

    Exit 0 when registered, 2 when refused (the server's problems are listed), 3 when the API is
    unreachable or unavailable.
    """
    client = _client(api_url)
    definition = _guarded(lambda: read_json_file(file))
    answer = _guarded(lambda: client.submit(definition))
    if as_json:
        print_document(answer)
    else:
        typer.echo(answer["execution_id"])


@app.command()
def trigger(
    execution_id: Annotated[str, typer.Argument(help="Id printed by `submit`.", show_default=False)],
    input_json: Annotated[
        str | None, typer.Option("--input", help="Run input as a JSON object.", show_default=False)
    ] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input-file", help="Read the run input from a JSON file.")
    ] = None,
    api_url: ApiUrl = None,
    as_json: JsonFlag = False,
) -> None:
    """Start a run of a registered workflow through the API; print its instance id.

    Exit 0 when started, 2 for an unknown id or invalid input, 3 when the API is unreachable.
    """
    client = _client(api_url)
    run_input: Any = _guarded(lambda: read_run_input(input_json, input_file))
    answer = _guarded(lambda: client.trigger(execution_id, run_input))
    if as_json:
        print_document(answer)
    else:
        typer.echo(answer["instance_id"])


InstanceArgument = Annotated[str, typer.Argument(help="Id printed by `trigger`.", show_default=False)]


@app.command()
def status(instance_id: InstanceArgument, api_url: ApiUrl = None, as_json: JsonFlag = False) -> None:
    """Show a run's state and a table of its nodes (status, attempts, error).

    Exit 0 whatever the run's state, 2 for an unknown id, 3 when the API is unreachable.
    """
    client = _client(api_url)
    answer = _guarded(lambda: client.status(instance_id))
    if as_json:
        print_document(answer)
    else:
        print_status(Console(), answer)


@app.command()
def results(instance_id: InstanceArgument, api_url: ApiUrl = None, as_json: JsonFlag = False) -> None:
    """Print the outputs of a finished run as JSON (``--json``: the API's whole answer).

    Exit 0 when the run COMPLETED, 1 when it FAILED or was CANCELLED, 2 when it is not finished yet
    or the id is unknown, 3 when the API is unreachable.
    """
    client = _client(api_url)
    answer = _guarded(lambda: client.results(instance_id))
    run_status = answer.get("status")
    print_document(answer if as_json else answer.get("results", {}))
    if not as_json:
        _err.print(f"run {instance_id}: {run_status}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_COMPLETED if run_status == "COMPLETED" else EXIT_FAILED)


@app.command()
def watch(instance_id: InstanceArgument, api_url: ApiUrl = None, as_json: JsonFlag = False) -> None:
    """Follow a run live (its event stream) until it ends: one line per event, progress on stderr.

    ``--json``: each event as one JSON line. A run that has ended already is replayed from its
    history. Exit 0 when the run COMPLETED, 1 when it FAILED or was CANCELLED, 2 for an unknown id,
    3 when the API is unreachable.
    """
    client = _client(api_url)
    run = _guarded(lambda: client.run(instance_id))
    total = len(run.get("nodes") or {})
    final = _guarded(lambda: _follow(client, instance_id, total, as_json))
    if not as_json:
        _err.print(f"run {instance_id}: {final}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_COMPLETED if final == "COMPLETED" else EXIT_FAILED)


def _follow(client: ApiClient, run_id: str, total: int, as_json: bool) -> str:
    """Print the run's events as they come; returns the run's final status."""
    finished: set[str] = set()
    with RunProgress(_err, enabled=not as_json and _err.is_terminal) as progress:
        progress.start_run(f"run {run_id}", total)
        for event in client.events(run_id):
            if as_json:
                print_document_line(event)
            else:
                typer.echo(event_line(event))
            node_id = event.get("node_id")
            ended = event.get("kind") == "node_succeeded" or (
                event.get("kind") in ("node_failed", "attempt_timed_out", "event_dead_lettered")
                and not event.get("retry_at")
            )
            if node_id and ended:
                finished.add(node_id)
            finished.update(event.get("skipped") or ())
            progress.advance_to(len(finished))
            if event.get("run_status"):
                return str(event["run_status"])
    raise ApiError.from_response(502, "stream_ended", f"the event stream of run {run_id} ended early")


@app.command()
def cancel(instance_id: InstanceArgument, api_url: ApiUrl = None, as_json: JsonFlag = False) -> None:
    """Cancel a run: nodes not yet started never start and the run ends CANCELLED.

    Exit 0 when the cancel was accepted, 2 when the run has ended already or the id is unknown, 3
    when the API is unreachable.
    """
    client = _client(api_url)
    answer = _guarded(lambda: client.cancel(instance_id))
    if as_json:
        print_document(answer)
    else:
        typer.echo(f"cancel requested for run {instance_id} (it was {answer.get('status')})")


def main() -> None:
    app()
