"""What the newcomer tests share: a handlers module written into a temporary folder (imported with
``--handlers`` from the working directory, no ``PYTHONPATH``), its workflows, and one command run."""

from __future__ import annotations

import json
from pathlib import Path

from e2e_cli import PROCESS_TIMEOUT_SECONDS, CliResult, cli_env

from bench.processes import DAG_SERVICE, run_captured

HANDLERS_MODULE = "newcomer_handlers"
HANDLERS_SOURCE = """
import logging
import pathlib
import time

from services.worker import handler

log = logging.getLogger(__name__)


@handler("explode")
def explode(ctx):
    log.info("about to explode on attempt %s", ctx.attempt)
    ctx.log.warning("config is %s", ctx.config)
    return deep_helper(ctx)


def deep_helper(ctx):
    raise ValueError("boom in deep_helper")


@handler("talk")
async def talk(ctx):
    ctx.log.info("hello from an async handler")
    return {"text": "x" * 2000}


@handler("sleepy")
def sleepy(ctx):
    pathlib.Path(ctx.config["marker"]).write_text("started")
    time.sleep(60)
    return {}
"""


def write_handlers(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{HANDLERS_MODULE}.py").write_text(HANDLERS_SOURCE, encoding="utf-8")
    return folder


def write_workflow(folder: Path, name: str, nodes: list[dict[str, object]]) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"name": name, "dag": {"nodes": nodes}}), encoding="utf-8")
    return path


def failing_workflow(folder: Path) -> Path:
    """``a`` (talk) then ``b`` (explode, two attempts): the run FAILS with b's traceback."""
    return write_workflow(
        folder,
        "failing",
        [
            {"id": "a", "handler": "talk", "dependencies": [], "config": {}},
            {
                "id": "b",
                "handler": "explode",
                "dependencies": ["a"],
                "config": {"k": 1},
                "retry_policy": {"max_attempts": 2, "initial_backoff_seconds": 0.05},
            },
        ],
    )


def command(*args: str, cwd: Path, pycache: Path | None, **env: str) -> CliResult:
    """Run ``dag-service args`` in ``cwd`` with no engine setting but ``env``."""
    completed = run_captured(
        [str(DAG_SERVICE), *args], env={**cli_env(pycache), **env}, cwd=cwd, timeout=PROCESS_TIMEOUT_SECONDS
    )
    return CliResult(tuple(args), completed.returncode, completed.stdout, completed.stderr)
