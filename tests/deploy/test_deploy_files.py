"""The container files agree with the code they deploy, checked without Docker.

deploy/Dockerfile, deploy/entrypoint.sh, docker-compose.yml and .dockerignore name commands, settings,
ports and paths of the project; a rename on either side must fail here rather than at `docker compose up`.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer.core
import typer.main
import yaml
from redis_support import RedisServer

from services.api import create_app
from services.cli import app as cli_app
from services.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERIGNORE = ROOT / ".dockerignore"

ENGINE_SERVICES = ("api", "orchestrator", "worker")
# Environment names the compose file may set although Settings has no such field. None today.
ENV_EXCEPTIONS: frozenset[str] = frozenset()
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")


# --- helpers -------------------------------------------------------------------------------------------


def cli_commands() -> set[str]:
    group = typer.main.get_command(cli_app)
    assert isinstance(group, typer.core.TyperGroup)
    return set(group.commands)


def setting_names() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return instructions


def stages() -> list[list[tuple[str, str]]]:
    """The instructions of each build stage, the FROM line first."""
    result: list[list[tuple[str, str]]] = []
    for instruction in dockerfile_instructions():
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list), f"not the exec (JSON) form: {arguments}"
    return value


def as_list(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def environment(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return dict(env)


def resolve(value: str) -> str:
    """Compose interpolation with nothing set in the shell: ``${NAME:-default}`` gives ``default``."""
    return INTERPOLATION.sub(lambda match: match.group("default") or "", value)


def entrypoint_roles() -> list[str]:
    """The roles of the entrypoint's `case` branch that execs dag-service (the one listing `api`)."""
    for line in ENTRYPOINT.read_text().splitlines():
        pattern = line.strip()
        if pattern.endswith(")") and re.search(r"(^|\|)\s*api\s*(\||\))", pattern):
            return [role.strip() for role in pattern[:-1].split("|")]
    raise AssertionError("no case branch listing the roles (api | orchestrator | ...) in entrypoint.sh")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


# --- docker-compose.yml --------------------------------------------------------------------------------


def test_compose_has_the_four_services_and_no_version_key(compose: dict[str, Any]) -> None:
    assert "version" not in compose, "the `version` key is obsolete in the Compose specification"
    assert {"redis", *ENGINE_SERVICES} <= set(compose["services"])


def test_engine_services_share_one_image_built_from_deploy_dockerfile(
    services: dict[str, dict[str, Any]],
) -> None:
    images = set()
    for name in ENGINE_SERVICES:
        build = services[name]["build"]
        assert build["context"] == "."
        assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        images.add(services[name].get("image"))
    assert len(images) == 1, f"one image for every role, not {images}"


def test_every_role_is_a_dag_service_command(services: dict[str, dict[str, Any]]) -> None:
    commands = cli_commands()
    for name in ENGINE_SERVICES:
        role = as_list(services[name]["command"])[0]
        assert role in commands, f"service {name}: `{role}` is not a dag-service command"
    assert as_list(services["api"]["command"])[0] == "api"
    assert as_list(services["orchestrator"]["command"])[0] == "orchestrator"
    assert as_list(services["worker"]["command"])[0] == "worker"
    unknown = set(entrypoint_roles()) - commands
    assert not unknown, f"entrypoint.sh lists roles dag-service does not have: {sorted(unknown)}"
    default = exec_form(dict(dockerfile_instructions())["CMD"])
    assert default == ["api"]


def test_health_checks_of_the_engine_services_run_the_light_probe(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ("orchestrator", "worker"):
        test = as_list(services[name]["healthcheck"]["test"])
        assert test == ["CMD", "python", "-m", "services.health_probe"], name
    assert importlib.util.find_spec("services.health_probe") is not None


def test_every_environment_name_is_a_setting(services: dict[str, dict[str, Any]]) -> None:
    known = setting_names() | ENV_EXCEPTIONS
    for name in ENGINE_SERVICES:
        unknown = {key for key in environment(services[name]) if key.upper() not in known}
        assert not unknown, f"service {name} sets variables no setting reads: {sorted(unknown)}"
    assert environment(services["api"])["REDIS_HOST"] == "redis"


def test_environment_values_are_strings_that_settings_accept(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in setting_names():
        monkeypatch.delenv(key, raising=False)
    for name in ENGINE_SERVICES:
        env = environment(services[name])
        for key, value in env.items():
            # Compose rejects or rewrites booleans; numbers are fine but strings are unambiguous.
            assert isinstance(value, str), f"service {name}: quote the value of {key}"
        with monkeypatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, resolve(value))
            settings = Settings()
        assert settings.backend_for("memory") == "redis"
        assert settings.redis_location() == "redis://redis:6379/0"


def test_worker_scales_with_two_replicas_and_a_grace_period(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    for key in ("container_name", "hostname", "ports"):
        assert key not in worker, f"a fixed {key} prevents `docker compose up --scale worker=N`"
    assert worker["deploy"]["replicas"] == 2
    grace = re.fullmatch(r"(\d+)s", str(worker["stop_grace_period"]))
    assert grace is not None and int(grace.group(1)) >= 10


def test_only_the_api_publishes_a_host_port(services: dict[str, dict[str, Any]]) -> None:
    assert [name for name, service in services.items() if "ports" in service] == ["api"]
    for name in ("orchestrator", "worker"):
        assert "container_name" not in services[name]


def test_api_publishes_8000_and_checks_the_health_route(services: dict[str, dict[str, Any]]) -> None:
    api = services["api"]
    published = [str(port) for port in api["ports"]]
    assert "8000:8000" in published
    default_prefix = Settings.model_fields["api_str"].default
    default_port = Settings.model_fields["api_port"].default
    env = environment(api)
    assert resolve(env.get("API_STR", default_prefix)) == default_prefix
    assert int(resolve(env.get("API_PORT", str(default_port)))) == default_port == 8000

    test = " ".join(as_list(api["healthcheck"]["test"]))
    assert "curl" not in test and "wget" not in test, "python:3.13-slim has neither curl nor wget"
    match = re.search(r"https?://localhost:(\d+)(/[^'\"\s]*)", test)
    assert match is not None, f"no http://localhost URL in {test}"
    assert int(match.group(1)) == default_port
    assert match.group(2) == default_prefix + "/health"
    assert "urllib" in test


async def test_the_health_route_answers_with_the_default_settings() -> None:
    application = create_app(lambda: None, Settings())  # the health route never asks for the service
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8000") as client:
        response = await client.get(Settings.model_fields["api_str"].default + "/health")
    assert response.status_code == 200


def test_redis_is_durable_and_checked(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    assert str(redis["image"]).startswith("redis:7")
    command = " ".join(as_list(redis["command"]))
    assert "--appendonly yes" in command
    assert "--appendfsync everysec" in command
    assert any(str(volume).endswith(":/data") for volume in redis["volumes"])
    test = " ".join(as_list(redis["healthcheck"]["test"]))
    assert "redis-cli ping" in test


def test_dependencies_wait_for_a_healthy_redis(services: dict[str, dict[str, Any]]) -> None:
    for name in ENGINE_SERVICES:
        depends_on = services[name]["depends_on"]
        assert isinstance(depends_on, dict), f"service {name}: use the long form with a condition"
        assert "redis" in depends_on
        for target, options in depends_on.items():
            assert options["condition"] == "service_healthy", f"{name} -> {target}"
            assert "healthcheck" in services[target], f"{target} has no health check to wait for"


def test_every_service_has_a_health_check(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert service["healthcheck"]["test"], name


# --- deploy/Dockerfile ---------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_on_one_python_base() -> None:
    bases = [arguments.split()[0] for keyword, arguments in dockerfile_instructions() if keyword == "FROM"]
    assert len(bases) >= 2
    # The venv's python links to the builder's interpreter: the runtime must have it at the same path.
    assert set(bases) == {"python:3.13-slim"}


def test_dockerfile_installs_with_uv_from_a_pinned_image_and_the_lock() -> None:
    builder = stages()[0]
    copies = [arguments for keyword, arguments in builder if keyword == "COPY"]
    uv_copy = next(arguments for arguments in copies if "astral-sh/uv" in arguments)
    assert re.search(r"--from=ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})? ", uv_copy)
    assert uv_copy.split()[-3:] == ["/uv", "/uvx", "/bin/"]

    runs = [arguments for keyword, arguments in builder if keyword == "RUN"]
    syncs = [run for run in runs if "uv sync" in run]
    assert len(syncs) == 2
    dependencies, project = syncs
    for run in syncs:
        assert "--frozen" in run and "--no-dev" in run
        assert "--mount=type=cache" in run
    assert "--no-install-project" in dependencies
    assert "--no-install-project" not in project
    # The dependency layer sees only the lock and pyproject; the project is copied between the two.
    order = [arguments for keyword, arguments in builder if keyword in {"RUN", "COPY"}]
    project_copy = next(i for i, arguments in enumerate(order) if arguments.split()[0] in {".", "./"})
    assert order.index(dependencies) < project_copy < order.index(project)


def test_dockerfile_runtime_runs_the_entrypoint_as_a_non_root_user() -> None:
    runtime = stages()[-1]
    keywords = dict(runtime)
    user = keywords["USER"].split(":")[0]
    assert user not in {"root", "0"}
    assert keywords["WORKDIR"].startswith("/")
    assert "8000" in keywords["EXPOSE"].split()
    assert "/.venv/bin" in keywords["ENV"] and "PATH=" in keywords["ENV"]
    assert any(
        "--from=builder" in arguments and ".venv" in arguments for k, arguments in runtime if k == "COPY"
    )

    entrypoint = exec_form(keywords["ENTRYPOINT"])
    assert len(entrypoint) == 1
    script_copy = next(
        arguments.split()
        for keyword, arguments in runtime
        if keyword == "COPY" and "deploy/entrypoint.sh" in arguments
    )
    assert script_copy[-1] == entrypoint[0], "ENTRYPOINT runs the copied deploy/entrypoint.sh"
    executable = os.stat(ENTRYPOINT).st_mode & stat.S_IXUSR
    assert executable or any(option.startswith("--chmod=") for option in script_copy)


def test_dockerignore_keeps_what_the_image_needs() -> None:
    patterns = [
        line.strip().lstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert not any(pattern.startswith("!") for pattern in patterns), "this check ignores exceptions"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = [
        "pyproject.toml",
        "uv.lock",
        project["project"]["readme"],
        *project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"],
        "examples",
        "deploy/entrypoint.sh",
    ]
    for path in needed:
        assert (ROOT / path).exists(), path
        prefixes = ["/".join(path.split("/")[: i + 1]) for i in range(path.count("/") + 1)]
        for pattern in patterns:
            glob = pattern.removeprefix("**/")
            hits = [p for p in prefixes if fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, glob)]
            assert not hits, f".dockerignore pattern {pattern!r} drops {path}"
    assert {".venv", ".git"} <= set(patterns)


# --- deploy/entrypoint.sh ------------------------------------------------------------------------------


def test_entrypoint_is_a_posix_sh_script() -> None:
    text = ENTRYPOINT.read_bytes()
    assert b"\r" not in text, "CRLF line endings break the shebang in the container"
    first, *_ = text.decode().splitlines()
    assert first in {"#!/bin/sh", "#!/usr/bin/env sh"}
    assert re.search(r"^set -eu$", text.decode(), re.MULTILINE)
    assert "exec dag-service" in text.decode()


def test_entrypoint_syntax() -> None:
    sh = shutil.which("sh")
    assert sh is not None
    result = subprocess.run([sh, "-n", str(ENTRYPOINT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["worker", "--concurrency", "3"], ["worker", "--concurrency", "3"]),
        ([], ["api"]),
        (["api"], ["api"]),
        (["dag-service", "orchestrator"], ["orchestrator"]),
        (["run", "a file.json", "--json"], ["run", "a file.json", "--json"]),
        (["--help"], ["--help"]),
    ],
)
def test_entrypoint_execs_dag_service(tmp_path: Path, arguments: list[str], expected: list[str]) -> None:
    """A stub dag-service on an otherwise empty PATH prints its pid and arguments, one per line."""
    sh = shutil.which("sh")
    assert sh is not None
    stub = tmp_path / "dag-service"
    stub.write_text('#!/bin/sh\necho "pid=$$"\nfor argument in "$@"; do echo "arg=$argument"; done\n')
    stub.chmod(0o755)
    process = subprocess.Popen(
        [sh, str(ENTRYPOINT), *arguments],
        env={"PATH": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    lines = stdout.splitlines()
    # exec: dag-service replaced the entrypoint's shell, so it has the very pid Docker signals.
    assert lines[0] == f"pid={process.pid}"
    assert lines[1:] == [f"arg={argument}" for argument in expected]


def test_the_health_probe_exits_0_when_redis_answers_and_3_when_it_does_not(
    redis_server: RedisServer,
) -> None:
    def probe(port: int) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ["PATH"], "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(port)}
        command = [sys.executable, "-m", "services.health_probe"]
        return subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=60, check=False, start_new_session=True
        )

    answering = probe(redis_server.port)
    assert (answering.returncode, answering.stdout) == (0, "ok: redis backend answers\n"), answering
    with socket.socket() as unused:  # a port nothing listens on: bound, never listening
        unused.bind(("127.0.0.1", 0))
        silent = probe(unused.getsockname()[1])
    assert silent.returncode == 3, silent
    assert silent.stderr.startswith("error: Redis does not answer:"), silent.stderr
    assert "Traceback" not in silent.stderr
