"""The ``dag-service`` Typer app, and how its commands report errors: through the one error table,
so that every expected error prints in plain words and leaves with its exit code."""

from __future__ import annotations

from collections.abc import Callable

import typer
from rich.console import Console

from domain.errors import InvalidDefinition, InvalidInput
from services.application.errors import ApiError, outcome_of
from services.cli.client import api_error_lines

app = typer.Typer(
    name="dag-service",
    help="Event-driven DAG workflow engine: validate and run JSON workflows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
stderr = Console(stderr=True)


def print_line(text: str) -> None:
    """``text`` on stderr as it is: no markup, no highlighting, wrapped only by the terminal."""
    stderr.print(text, markup=False, highlight=False, soft_wrap=True)


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
