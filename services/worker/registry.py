"""Handlers by name, registered with a decorator; async ones run on the loop, sync ones in threads."""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.application.errors import ConfigurationError


@dataclass(slots=True)
class HandlerContext:
    """What a handler receives for one attempt of one node (not frozen: built once per attempt on
    the hot path, and a frozen dataclass's constructor costs twice as much)."""

    run_id: str
    node_id: str
    attempt: int
    config: dict[str, Any]
    """The node's config, templates rendered: ``{{ secrets.NAME }}`` holds the real value here
    (hidden again as ``***`` in what the attempt outputs, raises and logs)."""
    inputs: Mapping[str, Any]
    """Outputs of the node's direct dependencies, by node id."""
    run_input: dict[str, Any]
    idempotency_key: str
    """``run:node:attempt``: key side effects on it so a repeated attempt does not repeat them."""
    log: logging.Logger = logging.getLogger("dag.handler")  # noqa: RUF009 - one logger, shared
    """A logger whose lines (INFO and above) go to this attempt's log, as any ``logging`` call made
    while the attempt runs does (``dag-service logs RUN NODE``)."""
    cancelled: threading.Event = field(default_factory=threading.Event)
    """Set when the run ended without this attempt (cancelled, failed fast, timed out): a sync
    handler polls ``ctx.cancelled.is_set()`` and returns; an async handler's task is cancelled."""


type HandlerFunction = Callable[[HandlerContext], Any] | Callable[[HandlerContext], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Handler:
    name: str
    function: HandlerFunction
    is_async: bool


class NonRetryableError(Exception):
    """Raised by a handler (or a subclass of it) to fail its node at once: no retry is attempted,
    whatever the node's retry policy. The error type recorded is the class's name."""


class UnknownHandler(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no handler named '{name}' is registered on this worker")


class HandlerRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, name: str) -> Callable[[HandlerFunction], HandlerFunction]:
        """Decorator: ``@registry.register("send_email")`` over ``def f(ctx) -> output``."""

        def decorate(function: HandlerFunction) -> HandlerFunction:
            if name in self._handlers:
                raise ValueError(f"handler '{name}' is already registered")
            is_async = inspect.iscoroutinefunction(function)
            self._handlers[name] = Handler(name, function, is_async)
            return function

        return decorate

    def get(self, name: str) -> Handler:
        try:
            return self._handlers[name]
        except KeyError:
            raise UnknownHandler(name) from None

    def names(self) -> frozenset[str]:
        return frozenset(self._handlers)

    def __iter__(self) -> Iterator[Handler]:
        return iter(self._handlers.values())


def import_handler_modules(modules: list[str], source: str) -> None:
    """Import user modules so that their ``@handler`` decorators run, with the working directory
    importable (as Celery's ``-A`` has it). ``source`` names where the list came from, for the error:
    a module that cannot be imported is a ``ConfigurationError`` of one line."""
    if not modules:
        return
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as error:  # whatever the module raises, the setting is what to fix
            reason = str(error) if isinstance(error, ImportError) else f"{type(error).__name__}: {error}"
            raise ConfigurationError(
                f"{source}: cannot import handler module '{module}' ({reason}); "
                f"accepted: importable module names, from the working directory ({here}) or installed"
            ) from None
