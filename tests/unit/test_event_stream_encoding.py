"""The run's event stream writes its Server-Sent Events itself, a read of the history per write
(``services.api.event_stream``); the frames must stay those FastAPI's own SSE responses wrote for
the same events (``fastapi.sse.format_sse_event``): kind, data (the event's one-line JSON) and
number, for every kind of entry, text that needs escaping included."""

from __future__ import annotations

from fastapi.sse import format_sse_event
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.history import EntryKind, HistoryEntry
from domain.node_state import ErrorInfo
from domain.statuses import RunStatus
from services.api.event_stream import encode_events
from services.api.resource_schemas import run_event

texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=10)
entries = st.builds(
    HistoryEntry,
    kind=st.sampled_from(EntryKind),
    at=st.floats(min_value=0, max_value=4_102_444_800),
    node_id=st.one_of(st.none(), texts),
    attempt=st.one_of(st.none(), st.integers(min_value=1, max_value=9)),
    worker_id=st.one_of(st.none(), texts),
    error=st.one_of(st.none(), st.builds(ErrorInfo, texts, texts)),
    dispatched=st.lists(texts, max_size=3).map(tuple),
    run_status=st.one_of(st.none(), st.sampled_from(RunStatus)),
    progress=st.one_of(st.none(), st.dictionaries(texts, st.integers(), max_size=2)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(entries, max_size=5), st.integers(min_value=1, max_value=10**6))
def test_the_frames_are_those_fastapi_wrote(stream: list[HistoryEntry], first: int) -> None:
    numbered = list(enumerate(stream, first))
    expected = b"".join(
        format_sse_event(
            data_str=run_event(number, entry).model_dump_json(), event=entry.kind.value, id=str(number)
        )
        for number, entry in numbered
    )
    assert encode_events(numbered) == expected
