"""Client commands: talk to a running API (``dag-service up``, ``web`` or ``api``) over HTTP.

Imports are kept to typer and the error table here; rich is imported by the commands that draw
with it (see ``typer_app``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from services.application.errors import EXIT_COMPLETED, EXIT_FAILED, ApiError
from services.cli.client import (
    ApiClient,
    default_api_url,
    event_line,
    print_document,
    print_document_line,
    print_status,
)
from services.cli.files import read_json_file, read_run_input
from services.cli.options import FileArgument, InputFile, InputJson
from services.cli.typer_app import guarded, print_line, stderr

ApiUrl = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        help="The API, with or without its prefix (/api). Default: $DAG_API_URL, else "
        "http://localhost:8000 + API_STR. A bearer token is read from $DAG_API_TOKEN.",
        show_default=False,
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print the API's answer as one JSON document.")]
InstanceArgument = Annotated[str, typer.Argument(help="Id printed by `trigger`.", show_default=False)]


def _client(api_url: str | None) -> ApiClient:
    return ApiClient(api_url or default_api_url())


def submit(file: FileArgument, api_url: ApiUrl = None, as_json: JsonFlag = False) -> None:
    """Register a workflow definition with the API; print its execution id.

    Exit 0 when registered, 2 when refused (the server's problems are listed), 3 when the API is
    unreachable or unavailable.
    """
    client = _client(api_url)
    definition = guarded(lambda: read_json_file(file))
    answer = guarded(lambda: client.submit(definition))
    if as_json:
        print_document(answer)
    else:
        typer.echo(answer["execution_id"])
        for warning in answer.get("warnings") or []:
            print_line(f"warning: {warning.get('path')}: {warning.get('message')}")


def trigger(
    execution_id: Annotated[str, typer.Argument(help="Id printed by `submit`.", show_default=False)],
    input_json: InputJson = None,
    input_file: InputFile = None,
    api_url: ApiUrl = None,
    as_json: JsonFlag = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Then wait for the run to end (woken by the engine, no polling) and show its status "
            "as `status` does (--json: that document only); exit 0 when it COMPLETED, 1 when it "
            "FAILED or was CANCELLED.",
        ),
    ] = False,
) -> None:
    """Start a run of a registered workflow through the API; print its instance id.

    Exit 0 when started, 2 for an unknown id or invalid input, 3 when the API is unreachable.
    """
    client = _client(api_url)
    run_input: Any = guarded(lambda: read_run_input(input_json, input_file))
    answer = guarded(lambda: client.trigger(execution_id, run_input))
    if as_json and not wait:
        print_document(answer)
    elif not as_json:  # with --json --wait, the final status (it names the run) is the one document
        typer.echo(answer["instance_id"])
    if not wait:
        return
    final = guarded(lambda: client.status_when_final(answer["instance_id"]))
    if as_json:
        print_document(final)
    else:
        from rich.console import Console

        print_status(Console(), final)
    raise typer.Exit(EXIT_COMPLETED if final["state"] == "COMPLETED" else EXIT_FAILED)


def status(instance_id: InstanceArgument, api_url: ApiUrl = None, as_json: JsonFlag = False) -> None:
    """Show a run's state and a table of its nodes (status, attempts, error).

    Exit 0 whatever the run's state, 2 for an unknown id, 3 when the API is unreachable.
    """
    client = _client(api_url)
    answer = guarded(lambda: client.status(instance_id))
    if as_json:
        print_document(answer)
    else:
        from rich.console import Console

        print_status(Console(), answer)


def results(instance_id: InstanceArgument, api_url: ApiUrl = None, as_json: JsonFlag = False) -> None:
    """Print the outputs of a finished run as JSON (--json: the API's whole answer).

    Exit 0 when the run COMPLETED, 1 when it FAILED or was CANCELLED, 2 when it is not finished yet
    or the id is unknown, 3 when the API is unreachable.
    """
    client = _client(api_url)
    answer = guarded(lambda: client.results(instance_id))
    run_status = answer.get("status")
    print_document(answer if as_json else answer.get("results", {}))
    if not as_json:
        print_line(f"run {instance_id}: {run_status}")
    raise typer.Exit(EXIT_COMPLETED if run_status == "COMPLETED" else EXIT_FAILED)


def watch(instance_id: InstanceArgument, api_url: ApiUrl = None, as_json: JsonFlag = False) -> None:
    """Follow a run live (its event stream) until it ends: one line per event, progress on stderr.

    --json: each event as one JSON line. A run that has ended already is replayed from its
    history. Exit 0 when the run COMPLETED, 1 when it FAILED or was CANCELLED, 2 for an unknown id,
    3 when the API is unreachable.
    """
    client = _client(api_url)
    run = guarded(lambda: client.run(instance_id))
    total = len(run.get("nodes") or {})
    final = guarded(lambda: _follow(client, instance_id, total, as_json))
    if not as_json:
        print_line(f"run {instance_id}: {final}")
    raise typer.Exit(EXIT_COMPLETED if final == "COMPLETED" else EXIT_FAILED)


def _follow(client: ApiClient, run_id: str, total: int, as_json: bool) -> str:
    """Print the run's events as they come; returns the run's final status."""
    from services.cli.progress import RunProgress

    finished: set[str] = set()
    final: str | None = None
    with RunProgress(stderr(), enabled=not as_json and stderr().is_terminal) as progress:
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
                final = str(event["run_status"])  # the stream goes on when a redrive followed
    if final is not None:
        return final
    raise ApiError.from_response(502, "stream_ended", f"the event stream of run {run_id} ended early")


def cancel(instance_id: InstanceArgument, api_url: ApiUrl = None, as_json: JsonFlag = False) -> None:
    """Cancel a run: nodes not yet started never start and the run ends CANCELLED.

    Exit 0 when the cancel was accepted, 2 when the run has ended already or the id is unknown, 3
    when the API is unreachable.
    """
    client = _client(api_url)
    answer = guarded(lambda: client.cancel(instance_id))
    if as_json:
        print_document(answer)
    else:
        typer.echo(f"cancel requested for run {instance_id} (it was {answer.get('status')})")


def redrive(
    instance_id: InstanceArgument,
    from_nodes: Annotated[
        list[str] | None,
        typer.Option(
            "--from", help="Also run this node and its descendants again, even if completed (repeatable)."
        ),
    ] = None,
    api_url: ApiUrl = None,
    as_json: JsonFlag = False,
) -> None:
    """Run a FAILED or CANCELLED run again: its failed, cancelled and skipped nodes (completed
    outputs are kept); the run is RUNNING again. Follow it with `watch`.

    Exit 0 when the redrive was accepted, 2 when the run cannot be redriven (COMPLETED, still
    running) or a node of --from is unknown, 3 when the API is unreachable.
    """
    client = _client(api_url)
    answer = guarded(lambda: client.redrive(instance_id, from_nodes or []))
    if as_json:
        print_document(answer)
    else:
        nodes = ", ".join(answer.get("redriven") or [])
        typer.echo(f"run {instance_id} redriven ({answer.get('status')}): {nodes}")


def logs(
    instance_id: InstanceArgument,
    node_id: Annotated[str, typer.Argument(help="The node's id.", show_default=False)],
    attempt: Annotated[
        int | None, typer.Option("--attempt", min=1, help="The attempt (default: the latest).")
    ] = None,
    api_url: ApiUrl = None,
    as_json: JsonFlag = False,
) -> None:
    """Print what a node's handler logged during one attempt (its traceback last if it failed).

    Exit 0, 2 for an unknown run, node or attempt, 3 when the API is unreachable.
    """
    client = _client(api_url)
    answer = guarded(lambda: client.attempt_log(instance_id, node_id, attempt))
    if as_json:
        print_document(answer)
        return
    lines = answer.get("lines") or []
    for line in lines:
        typer.echo(line)
    print_line(f"run {instance_id}, node {node_id}, attempt {answer.get('attempt')}: {len(lines)} line(s)")


def handlers(api_url: ApiUrl = None, as_json: JsonFlag = False) -> None:
    """List what the live workers serve: queue, handler and how many workers have it.

    Exit 0 (an empty list when no worker is alive), 3 when the API is unreachable.
    """
    client = _client(api_url)
    answer = guarded(client.handlers)
    if as_json:
        print_document(answer)
        return
    items = answer.get("items") or []
    if not items:
        print_line("no live worker has announced itself")
        return
    rows = [(str(i.get("queue")), str(i.get("handler")), str(i.get("workers"))) for i in items]
    widths = [max(len(row[c]) for row in [("QUEUE", "HANDLER", "WORKERS"), *rows]) for c in range(3)]
    for row in [("QUEUE", "HANDLER", "WORKERS"), *rows]:
        typer.echo(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}")


COMMANDS = (submit, trigger, status, results, watch, logs, cancel, redrive, handlers)
"""In the order ``dag-service --help`` lists them."""
