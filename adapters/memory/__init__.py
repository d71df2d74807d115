"""In-process adapters: the embedded default for local use and tests. State lives in this process."""

from adapters.memory.attempt_logs import InMemoryAttemptLogStore
from adapters.memory.changes import InMemoryRunChanges
from adapters.memory.queue import InMemoryQueue
from adapters.memory.rate_limits import InMemoryRateLimiter
from adapters.memory.repositories import InMemoryDefinitionRepository, InMemoryRunRepository
from adapters.memory.signals import InMemoryAttemptSignals
from adapters.memory.slots import InMemoryConcurrencySlots
from adapters.memory.timers import InMemoryTimerStore
from adapters.memory.workers import InMemoryWorkerDirectory

__all__ = [
    "InMemoryAttemptLogStore",
    "InMemoryAttemptSignals",
    "InMemoryConcurrencySlots",
    "InMemoryDefinitionRepository",
    "InMemoryQueue",
    "InMemoryRateLimiter",
    "InMemoryRunChanges",
    "InMemoryRunRepository",
    "InMemoryTimerStore",
    "InMemoryWorkerDirectory",
]
