"""A deployable started while Redis is unreachable says so in one line and exits with code 3."""

from __future__ import annotations

from pathlib import Path

import pytest
from distributed_support import base_env

from bench.processes import DAG_SERVICE, free_port, run_captured

EXIT_UNAVAILABLE = 3


@pytest.mark.parametrize("role", ["worker", "orchestrator", "api"])
def test_role_exits_3_with_one_line_naming_host_and_port(
    role: str, tmp_path: Path, engine_pycache: Path | None
) -> None:
    port = free_port()  # bound and released at once: nothing listens there
    env = base_env(engine_pycache) | {
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "REDIS_KEY_PREFIX": "dt-unreachable",
        "API_HOST": "127.0.0.1",
        "API_PORT": str(free_port()),
    }
    finished = run_captured([str(DAG_SERVICE), role], env=env, cwd=tmp_path, timeout=60)
    described = (
        f"exit {finished.returncode}\n--- stdout ---\n{finished.stdout}\n--- stderr ---\n{finished.stderr}"
    )
    assert finished.returncode == EXIT_UNAVAILABLE, described
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1, described
    assert lines[0].startswith("error: "), described
    assert f"127.0.0.1:{port}" in lines[0], described
    assert "Traceback" not in finished.stderr + finished.stdout, described
    assert finished.stdout == "", described
