"""Reading JSON from files and options, with one clear line for every way it can go wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from services.application.errors import UsageError


def parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(
            f"{source} is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except RecursionError:
        raise UsageError(f"{source} nests arrays or objects too deeply to be read") from None


def read_json_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a JSON file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: is not UTF-8 text") from None
    except OSError as error:
        raise UsageError(f"{path}: cannot be read ({error.strerror})") from None
    return parse_json(text, str(path))


def read_run_input(inline: str | None, file: Path | None) -> Any:
    """The run input from ``--input`` or ``--input-file``; ``{}`` when neither is given."""
    if inline is not None and file is not None:
        raise UsageError("give either --input or --input-file, not both")
    if inline is not None:
        return parse_json(inline, "--input")
    if file is not None:
        return read_json_file(file)
    return {}
