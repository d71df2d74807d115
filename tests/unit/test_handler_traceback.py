"""The traceback a failed attempt keeps (``services.worker.attempt_log.handler_traceback``): whole
when short; bounded when long, its start and its failing frames kept."""

from __future__ import annotations

from services.worker.attempt_log import MAX_TRACEBACK_CHARS, failure_message, handler_traceback


def raised(depth: int) -> BaseException:
    """The error of a failure ``depth`` calls deep, alternating between two functions (Python
    folds a frame repeated in a row into one line)."""

    def recurse(left: int) -> None:
        if left == 0:
            raise ValueError("the deepest frame failed")
        again(left - 1)

    def again(left: int) -> None:
        recurse(left)

    try:
        recurse(depth)
    except ValueError as error:
        return error
    raise AssertionError("nothing was raised")


def test_a_short_traceback_is_kept_whole() -> None:
    text = handler_traceback(raised(2))
    assert text.startswith("Traceback (most recent call last):")
    assert text.endswith("ValueError: the deepest frame failed")
    assert "characters cut" not in text
    assert text.count("in recurse") == 3 and text.count("in again") == 2


def test_a_long_traceback_is_bounded_keeping_its_start_and_its_failing_frames() -> None:
    text = handler_traceback(raised(200))
    cut = "characters cut"
    assert cut in text
    assert len(text) <= MAX_TRACEBACK_CHARS + len(f"\n  ... (123456 {cut}) ...\n")
    assert text.startswith("Traceback (most recent call last):")
    assert text.endswith("ValueError: the deepest frame failed")
    assert 'raise ValueError("the deepest frame failed")' in text


def test_the_failure_message_is_the_error_then_its_traceback() -> None:
    message = failure_message(raised(1))
    first, rest = message.split("\n", 1)
    assert first == "the deepest frame failed"
    assert rest.startswith("Traceback (most recent call last):")
