"""Where a worker finds the value of ``{{ secrets.NAME }}``: a file per secret in a directory (as
Docker and Kubernetes mount them), else a variable of the environment the worker started with.

- File: ``SECRETS_DIR/NAME``, the name exactly as written; read at each attempt, so a rotated secret
  is picked up without a restart. One trailing newline is dropped (``echo value > file`` adds one).
- Variable: ``SECRETS_ENV_PREFIX`` + the name upper-cased with ``-`` as ``_``
  (``{{ secrets.github-token }}`` -> ``DAG_SECRET_GITHUB_TOKEN``); only variables with the prefix
  are ever read, so a config cannot name the worker's other variables (``REDIS_URL``).

Every value found is given to the worker's ``Redactor`` before anyone sees it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from domain.secret_refs import SecretUnavailable
from services.application.errors import ConfigurationError
from services.worker.redaction import Redactor

MAX_SECRET_BYTES = 64 * 1024
_NAME = re.compile(r"[A-Za-z0-9_-]+")
"""What the template grammar lets a secret's name be: never a path ('/', '..')."""


class SecretSource:
    def __init__(
        self, environ: Mapping[str, str], prefix: str, directory: Path | None, redactor: Redactor
    ) -> None:
        self._variables = {name: value for name, value in environ.items() if name.startswith(prefix)}
        self._prefix = prefix
        self._directory = directory
        self.redactor = redactor

    @classmethod
    def from_environment(cls, prefix: str, directory: Path | None) -> SecretSource:
        """The process's environment (as it is now) and directory; a directory that is not there is
        a configuration error: a worker would otherwise fail every attempt that needs a secret."""
        if directory is not None and not directory.is_dir():
            raise ConfigurationError(f"SECRETS_DIR={str(directory)!r}: not a directory")
        return cls(os.environ, prefix, directory, Redactor())

    def variable_for(self, name: str) -> str:
        return self._prefix + name.upper().replace("-", "_")

    def describe(self) -> str:
        """Where secrets come from, for the start-up line (never a value, nor which names exist)."""
        where = f"variables {self._prefix}*"
        return where if self._directory is None else f"{self._directory}/NAME, then {where}"

    def lookup(self, name: str) -> str:
        """The value of secret ``name`` (registered with the redactor), or ``SecretUnavailable``."""
        if _NAME.fullmatch(name) is None:
            raise SecretUnavailable(name, "a secret's name is letters, digits, '_' and '-'")
        value = None if self._directory is None else _from_file(self._directory, name)
        if value is None:
            value = self._variables.get(self.variable_for(name))
        if value is None:
            raise SecretUnavailable(name, f"this worker has {self._looked_in(name)}")
        if not value:
            raise SecretUnavailable(name, "its value is empty on this worker")
        self.redactor.add(value)
        return value

    def _looked_in(self, name: str) -> str:
        variable = f"no variable {self.variable_for(name)}"
        return variable if self._directory is None else f"no file {self._directory / name} and {variable}"


def _from_file(directory: Path, name: str) -> str | None:
    path = directory / name
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_SECRET_BYTES + 1)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except OSError as error:
        raise SecretUnavailable(name, f"{path} cannot be read ({error.strerror})") from None
    if len(raw) > MAX_SECRET_BYTES:
        raise SecretUnavailable(name, f"{path} is over {MAX_SECRET_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretUnavailable(name, f"{path} is not UTF-8 text") from None
    return text.removesuffix("\n").removesuffix("\r")
