"""The typed input example through the real ``dag-service`` console script: defaults fill the input;
an input against the schema exits 2 listing every problem with its path."""

from __future__ import annotations

from e2e_cli import CliBatch

EXIT_INVALID = 2


def test_the_typed_input_example_completes_with_the_schema_defaults(cli: CliBatch) -> None:
    result = cli["typed_json"]
    assert result.returncode == 0, result.describe()
    report = result.json()
    assert report["status"] == "COMPLETED"
    summary = report["nodes"]["summarize_user"]["output"]
    assert summary["prompt"].startswith("In en, in at most 50 words, summarize: "), summary
    assert report["nodes"]["get_user"]["output"]["url"].endswith("/users/u-5")


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
