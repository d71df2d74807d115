"""Arguments and options more than one command takes, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

FileArgument = Annotated[Path, typer.Argument(help="Workflow definition (JSON).", show_default=False)]
InputJson = Annotated[
    str | None, typer.Option("--input", help="Run input as a JSON object.", show_default=False)
]
InputFile = Annotated[Path | None, typer.Option("--input-file", help="Read the run input from a JSON file.")]
