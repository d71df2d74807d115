"""The typed input example through the real ``dag-service`` console script: an input against the
schema exits 2 listing every problem with its path. (The example's run with its defaults is a case of
``test_e2e_language_examples``, on both backends.)"""

from __future__ import annotations

from e2e_cli import CliBatch

EXIT_INVALID = 2


def test_an_input_against_the_schema_exits_2_with_every_problem_and_its_path(cli: CliBatch) -> None:
    result = cli["typed_bad_input"]
    assert result.returncode == EXIT_INVALID, result.describe()
    assert result.stdout == "", result.describe()
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "error: invalid run input: 2 problems",
        "  $.language: 'es' is not one of ['en', 'fr', 'de']",
        "  $.user_id: 5 is not of type 'string'",
    ]
