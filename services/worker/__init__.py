"""The worker deployable: takes tasks, resolves inputs, runs handlers, reports results."""

from services.worker.builtin import default_registry, handler
from services.worker.heartbeats import HeartbeatDetailsRefused
from services.worker.loop import Worker
from services.worker.registry import AttemptCancelledError, HandlerContext, HandlerRegistry, NonRetryableError

__all__ = [
    "AttemptCancelledError",
    "HandlerContext",
    "HandlerRegistry",
    "HeartbeatDetailsRefused",
    "NonRetryableError",
    "Worker",
    "default_registry",
    "handler",
]
