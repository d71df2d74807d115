"""Every encoding of the engine's data in Redis, in one place: messages (``messages``: events, tasks,
timers), run state (``runs``: meta, nodes, outputs, history) and definitions (``definitions``).

Adapters, tests and benchmarks read and write Redis only through these functions.
"""

from adapters.redis.codec.messages import (
    STAGED,
    MalformedEntry,
    decode_event,
    decode_task,
    encode_event,
    encode_task,
    encode_timer,
    staged_field,
)

__all__ = [
    "STAGED",
    "MalformedEntry",
    "decode_event",
    "decode_task",
    "encode_event",
    "encode_task",
    "encode_timer",
    "staged_field",
]
