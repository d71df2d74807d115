"""The seed status route's answer is written without a pydantic model per node
(``services.api.seed_schemas.encode_status``); its bytes must stay those of the route's model
(``status_of(view).model_dump_json()``) for every run: any status, times with and without
microseconds (and fractions that round up to the next second), errors and reasons with quotes,
control characters and non-ASCII text, node ids that need escaping."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.node_state import ErrorInfo
from domain.statuses import NodeStatus, RunStatus
from services.api.seed_schemas import encode_status, status_of
from services.application.run_view import NodeView, RunView

# Any text a handler's error may carry except lone surrogates, which neither side can write as UTF-8.
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
times = st.one_of(
    st.none(),
    st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False),  # up to the year 2100
    st.integers(min_value=0, max_value=4_102_444_800).map(float),  # whole seconds: no fraction written
    st.integers(min_value=1_600_000_000, max_value=1_900_000_000).map(lambda s: s + 0.9999996),
)
errors = st.one_of(st.none(), st.builds(ErrorInfo, texts, texts))


@st.composite
def node_views(draw: st.DrawFn) -> NodeView:
    return NodeView(
        status=draw(st.sampled_from(NodeStatus)),
        attempts=draw(st.integers(min_value=0, max_value=50)),
        queued_at=draw(times),
        started_at=draw(times),
        finished_at=draw(times),
        worker_id=None,
        error=draw(errors),
        failed_attempts=(),
        has_output=False,
        output=None,
        reason=draw(st.one_of(st.none(), texts)),
    )


@st.composite
def run_views(draw: st.DrawFn) -> RunView:
    return RunView(
        run_id=draw(texts),
        definition_id=draw(texts),
        workflow=draw(texts),
        status=draw(st.sampled_from(RunStatus)),
        input={},
        created_at=draw(times.filter(lambda t: t is not None)),
        started_at=draw(times),
        finished_at=draw(times),
        nodes=draw(st.dictionaries(texts, node_views(), max_size=6)),
        error=None,
        output=None,
        started_by=None,
        cancelled_by=None,
    )


@settings(max_examples=400, deadline=None)
@given(run_views())
def test_the_written_answer_is_the_models_bytes(view: RunView) -> None:
    assert encode_status(view) == status_of(view).model_dump_json().encode()
