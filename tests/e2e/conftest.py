from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_cases import example, invalid_commands, scenario_commands, usage_commands
from e2e_cli import DAG_SERVICE, CliBatch, run_cli


@pytest.fixture(scope="session")
def cli_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dag_service_cli")


@pytest.fixture(scope="session")
def cli(cli_workdir: Path, pytestconfig: pytest.Config) -> Iterator[CliBatch]:
    """Every end-to-end command, started together once per session; results are read by key."""
    assert DAG_SERVICE.exists(), f"console script not installed at {DAG_SERVICE}"
    pycache = cache.mkdir("dag_service_pycache") if (cache := getattr(pytestconfig, "cache", None)) else None
    # One command first, alone, so that the others find the bytecode cache filled.
    warm_up = run_cli("validate", example("scenario_a_linear"), pycache_prefix=pycache)
    assert warm_up.returncode == 0, warm_up.describe()
    batch = CliBatch(pycache)
    commands = {
        **scenario_commands(cli_workdir),
        **invalid_commands(cli_workdir),
        **usage_commands(cli_workdir),
    }
    try:
        for key, args in commands.items():
            batch.start(key, *args, cwd=cli_workdir)
        yield batch
    finally:
        batch.close()
