"""``{{ secrets.NAME }}`` on the embedded engine (memory backend): the worker resolves it from its
secrets directory or environment, the handler gets the real value, and the value is nowhere in what
the engine keeps or says afterwards: run state, outputs, errors, history, events, attempt logs, the
process's log records.

The handlers echo the secret every way a careless handler would: in the output (a value, a key,
inside text), in log lines (``logging``, ``ctx.log``, ``log.exception``), in an exception's message
and in the exception it was raised from.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from engine_support import fresh_registry, make_container, node, run_workflow, view, workflow
from secret_forms import secret_check, sha256

from adapters.memory import InMemoryQueue
from domain.events import Event
from domain.secret_refs import SecretUnavailable
from services.application.errors import ConfigurationError
from services.container import Container
from services.worker.redaction import REDACTED, Redactor
from services.worker.registry import HandlerContext, HandlerRegistry
from services.worker.secrets import MAX_SECRET_BYTES, SecretSource

TOKEN = "tok-7f3a9c2e5b1d"
"""From the environment (``TEST_SECRET_API_TOKEN``)."""
PASSWORD = 'pa"ss\\word-81c4é'
"""From a file of the secrets directory; a quote and a backslash, so its JSON form differs."""
PREFIX = "TEST_SECRET_"
NO_WAIT_RETRIES = {"max_attempts": 2, "initial_backoff_seconds": 0, "backoff_multiplier": 1}

log = logging.getLogger("secret.handlers")


assert_no_secret = secret_check(TOKEN, PASSWORD)


async def echo(ctx: HandlerContext) -> dict[str, Any]:
    token, password = ctx.config["token"], ctx.config["password"]
    log.info("calling with token %s and password %s", token, password)
    ctx.log.warning(f"header {ctx.config['auth']}")  # noqa: G004 - as a careless handler would
    return {
        "config": ctx.config,
        "as_key": {token: [password, f"x{password}x"]},
        "json": json.dumps({"password": password}),
        # Transformed: not redacted (and not a leak); tells the test what the handler was given.
        "digest": sha256(token),
        "password_digest": sha256(password),
    }


def boom(ctx: HandlerContext) -> None:
    token, password = ctx.config["token"], ctx.config["password"]
    try:
        raise ValueError(f"inner failure with {password}")
    except ValueError as inner:
        log.exception("the service refused %s", token)
        raise RuntimeError(f"rejected {token} / {json.dumps(password)}") from inner


def registry() -> HandlerRegistry:
    made = fresh_registry()
    made.register("echo")(echo)
    made.register("boom")(boom)
    return made


class RecordingEvents(InMemoryQueue[Event]):
    """The event bus, keeping every event ever sent on it."""

    def __init__(self) -> None:
        super().__init__("memory:events")
        self.sent: list[Event] = []

    async def send(self, messages: Sequence[Event]) -> None:
        self.sent.extend(messages)
        await super().send(messages)


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "db-password").write_text(PASSWORD + "\n", encoding="utf-8")  # as `echo > file` writes it
    return folder


def secret_container(secrets_dir: Path, environ: dict[str, str] | None = None) -> Container:
    container = make_container(registry())
    environ = {f"{PREFIX}API_TOKEN": TOKEN} if environ is None else environ
    source = SecretSource(environ, PREFIX, secrets_dir, Redactor())
    container.secret_source.override(providers.Object(source))
    container.events.override(providers.Singleton(RecordingEvents))
    return container


SECRET_CONFIG = {
    "token": "{{ secrets.api_token }}",
    "password": "{{ secrets.db-password }}",
    "auth": "Bearer {{ secrets.api_token }}",
}


def strings_in(root: object) -> Iterator[str]:
    """Every string reachable from ``root`` through containers, dataclasses and objects' attributes:
    all that an in-memory adapter keeps."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        item = stack.pop()
        if id(item) in seen or (callable(item) and not dataclasses.is_dataclass(item)):
            continue
        seen.add(id(item))
        if isinstance(item, str):
            yield item
        elif isinstance(item, bytes):
            yield item.decode("utf-8", "replace")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        elif hasattr(item, "__dict__") or hasattr(type(item), "__slots__"):
            names = list(getattr(item, "__dict__", {}))
            for klass in type(item).__mro__:
                names.extend(getattr(klass, "__slots__", ()))
            stack.extend(getattr(item, name) for name in names if hasattr(item, name))


def all_strings(root: object) -> str:
    return "\n".join(strings_in(root))


async def test_secrets_reach_the_handler_and_nothing_the_engine_keeps_or_says(
    secrets_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    container = secret_container(secrets_dir)
    definition = workflow(
        node("echo", "echo", config=SECRET_CONFIG),
        node("boom", "boom", config=SECRET_CONFIG, retry_policy=NO_WAIT_RETRIES),
        node("after", "echo", ["echo"], config={**SECRET_CONFIG, "seen": "{{ echo.config }}"}),
    )

    run = await run_workflow(container, definition)
    shown = view(run)
    workflows = container.workflows()
    history = await workflows.history(run.run_id, 0, 500)
    logs = {
        (node_id, attempt): (await workflows.attempt_log(run.run_id, node_id, attempt)).lines
        for node_id, attempt in (("echo", 1), ("boom", 1), ("boom", 2), ("after", 1))
    }

    # The handler had the real values: the digest (a transformation) is of the real token.
    echoed = shown["nodes"]["echo"]["output"]
    assert (echoed["digest"], echoed["password_digest"]) == (sha256(TOKEN), sha256(PASSWORD))
    assert echoed["config"] == {"token": REDACTED, "password": REDACTED, "auth": f"Bearer {REDACTED}"}
    assert echoed["as_key"] == {REDACTED: [REDACTED, f"x{REDACTED}x"]}
    assert json.loads(echoed["json"]) == {"password": REDACTED}
    assert shown["nodes"]["after"]["output"]["config"]["seen"] == echoed["config"]
    error = shown["nodes"]["boom"]["error"]
    assert error["type"] == "RuntimeError"
    assert error["message"].startswith(f'rejected {REDACTED} / "{REDACTED}"\nTraceback'), error
    assert f"ValueError: inner failure with {REDACTED}" in error["message"]
    assert shown["nodes"]["boom"]["attempts"] == 2
    assert any(f"calling with token {REDACTED} and password {REDACTED}" in line for line in logs["echo", 1])
    assert any(f"header Bearer {REDACTED}" in line for line in logs["echo", 1])
    assert any(f"the service refused {REDACTED}" in line for line in logs["boom", 1])
    assert logs["boom", 2][-1] == f'RuntimeError: rejected {REDACTED} / "{REDACTED}"'
    assert f"the service refused {REDACTED}" in caplog.text

    assert_no_secret(json.dumps(shown), "the run view")
    assert_no_secret(all_strings(history), "the history")
    assert_no_secret(all_strings(container.events().sent), "the events sent")
    assert_no_secret(all_strings(logs), "the attempt logs")
    assert_no_secret(caplog.text, "the process's log")
    for record in caplog.records:
        assert_no_secret(f"{record.getMessage()} {record.exc_text} {record.stack_info}", "a log record")
    stored = all_strings(container.runs())
    assert f"Bearer {REDACTED}" in stored and "Bearer {{ secrets.api_token }}" in stored, "all was read"
    for name in ("runs", "definitions", "events", "tasks", "timers", "attempt_logs", "signals"):
        assert_no_secret(all_strings(getattr(container, name)()), f"the memory {name}")


async def test_a_missing_secret_fails_the_attempt_naming_it_and_is_retried(secrets_dir: Path) -> None:
    container = secret_container(secrets_dir, environ={})
    definition = workflow(
        node("needs", "echo", config={"token": "{{ secrets.api_token }}"}, retry_policy=NO_WAIT_RETRIES)
    )

    needs = view(await run_workflow(container, definition))["nodes"]["needs"]

    assert needs["status"] == "FAILED"
    assert needs["attempts"] == 2, "retryable: another worker may have the secret"
    assert needs["error"] == {
        "type": "SecretUnavailable",
        "message": f"config.token: secret 'api_token' is not available: this worker has no file "
        f"{secrets_dir / 'api_token'} and no variable {PREFIX}API_TOKEN",
    }


async def test_a_rotated_secret_file_is_read_again_by_the_next_attempt(secrets_dir: Path) -> None:
    container = secret_container(secrets_dir)
    definition = workflow(node("echo", "echo", config=SECRET_CONFIG))

    first = view(await run_workflow(container, definition))["nodes"]["echo"]["output"]
    (secrets_dir / "db-password").write_text("rotated-2c9e", encoding="utf-8")
    second = view(await run_workflow(container, definition))["nodes"]["echo"]["output"]

    assert first["password_digest"] == sha256(PASSWORD)
    assert second["password_digest"] == sha256("rotated-2c9e")
    assert second["digest"] == first["digest"] == sha256(TOKEN)
    assert second["config"]["password"] == REDACTED, "the new value is redacted too"
    assert "rotated-2c9e" not in json.dumps(second)


# -- where a worker finds a secret --------------------------------------------------------------------


def test_a_file_of_the_secrets_directory_comes_before_the_environment(tmp_path: Path) -> None:
    (tmp_path / "api_token").write_text("from-file\r\n", encoding="utf-8")
    environ = {f"{PREFIX}API_TOKEN": "from-env", f"{PREFIX}OTHER_ONE": "other"}
    source = SecretSource(environ, PREFIX, tmp_path, Redactor())

    assert source.lookup("api_token") == "from-file", "one trailing newline dropped"
    assert source.lookup("other-one") == "other", "upper-cased, '-' as '_'"
    assert source.redactor.text("from-file other") == f"{REDACTED} {REDACTED}"


def test_only_variables_with_the_prefix_are_ever_read(tmp_path: Path) -> None:
    source = SecretSource({"REDIS_URL": "redis://:pw@h", "DAG_SECRET_": "x"}, "DAG_SECRET_", None, Redactor())

    with pytest.raises(SecretUnavailable) as raised:
        source.lookup("redis_url")
    assert str(raised.value) == (
        "secret 'redis_url' is not available: this worker has no variable DAG_SECRET_REDIS_URL"
    )
    assert not source.redactor.active


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"", "its value is empty on this worker"),
        (b"\xff\xfe", "is not UTF-8 text"),
        (b"x" * (MAX_SECRET_BYTES + 1), f"is over {MAX_SECRET_BYTES} bytes"),
    ],
    ids=["empty", "not-utf8", "too-large"],
)
def test_a_secret_file_that_cannot_be_used_is_unavailable_saying_why(
    tmp_path: Path, content: bytes, detail: str
) -> None:
    (tmp_path / "key").write_bytes(content)
    source = SecretSource({}, PREFIX, tmp_path, Redactor())

    with pytest.raises(SecretUnavailable, match=detail):
        source.lookup("key")


def test_a_name_that_is_a_path_is_never_read(tmp_path: Path) -> None:
    (tmp_path / "outside").write_text("not a secret", encoding="utf-8")
    source = SecretSource({}, PREFIX, tmp_path / "secrets", Redactor())

    with pytest.raises(SecretUnavailable, match="letters, digits"):
        source.lookup("../outside")


def test_a_secrets_directory_that_is_not_there_is_a_configuration_error(tmp_path: Path) -> None:
    expected = f"SECRETS_DIR='{tmp_path / 'nope'}': not a directory"
    with pytest.raises(ConfigurationError, match=re.escape(expected)):
        SecretSource.from_environment(PREFIX, tmp_path / "nope")
