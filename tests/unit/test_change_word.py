"""The word a Redis commit publishes of a run's change (``adapters.redis.changes``): the run's id
and the status the commit left it in; a bare id (published by an engine from before the status was
added) or a status this engine does not know tells no status, and its readers read the run."""

from __future__ import annotations

import pytest

from adapters.redis.changes import change_word, read_change_word
from domain.statuses import RunStatus


@pytest.mark.parametrize("status", list(RunStatus))
def test_the_word_gives_back_the_run_and_its_status(status: RunStatus) -> None:
    assert read_change_word(change_word("3f2a9c", status)) == ("3f2a9c", status)


@pytest.mark.parametrize("word", ["3f2a9c", "3f2a9c PAUSED"])
def test_a_word_without_a_known_status_tells_none(word: str) -> None:
    assert read_change_word(word) == ("3f2a9c", None)
