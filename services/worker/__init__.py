"""The worker deployable: takes tasks, resolves inputs, runs handlers, reports results."""

from services.worker.builtin import default_registry, handler
from services.worker.loop import Worker
from services.worker.registry import HandlerContext, HandlerRegistry, NonRetryableError

__all__ = ["HandlerContext", "HandlerRegistry", "NonRetryableError", "Worker", "default_registry", "handler"]
