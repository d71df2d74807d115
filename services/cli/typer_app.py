"""The ``dag-service`` Typer app, and how its commands report errors: through the one error table,
so that every expected error prints in plain words and leaves with its exit code.

Start-up time matters here (a client command should answer in well under half a second): this
module and the command modules import only typer and the error table; each command imports what
it needs (rich, the engine) when it runs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from domain.errors import InvalidDefinition, InvalidInput
from services.application.errors import ApiError, ConfigurationError, outcome_of

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    name="dag-service",
    help="Event-driven DAG workflow engine: validate and run JSON workflows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # --help as plain text: no boxes, readable in a pipe or a log
)


@functools.cache
def stderr() -> Console:
    """The rich console on stderr (progress, tables), made on first use."""
    from rich.console import Console

    return Console(stderr=True)


def print_line(text: str) -> None:
    """``text`` on stderr as it is: no markup, no highlighting, wrapped only by the terminal."""
    typer.echo(text, err=True)


def api_error_lines(error: ApiError) -> list[str]:
    """The server's message, then each detail as ``path: message``."""
    lines = [f"error: {error}"]
    for detail in error.details:
        lines.append(f"  {detail.path}: {detail.message}" if detail.path else f"  {detail.message}")
    return lines


def report_error(error: Exception) -> int:
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
    elif isinstance(error, ConfigurationError):
        lines = [f"configuration error: {error}"]
    for line in lines:
        print_line(line)
    return outcome.exit_code


def guarded[T](action: Callable[[], T]) -> T:
    """``action()``; an expected error exits the command with its code (``report_error``)."""
    try:
        return action()
    except Exception as error:  # every expected error leaves through the table, others re-raise
        raise typer.Exit(report_error(error)) from None


def main() -> None:
    app()
