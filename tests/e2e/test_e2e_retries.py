"""Retries, backoff and failure propagation through the real ``dag-service`` console script."""

from __future__ import annotations

from e2e_cli import CliBatch, seconds

EPSILON = 0.01


def test_retries_and_failure_example_fails_and_skips_the_broken_branch(cli: CliBatch) -> None:
    result = cli["retries_json"]
    assert result.returncode == 1, result.describe()
    assert "Traceback" not in result.stderr
    report = result.json()
    nodes = report["nodes"]

    assert report["status"] == "FAILED"

    broken = nodes["broken_service"]
    assert broken["status"] == "FAILED"
    assert broken["attempts"] == 2  # its retry_policy allows two attempts
    assert broken["error"]["type"] == "SimulatedServiceError"
    message = broken["error"]["message"]
    first_line, _, traceback = message.partition("\n")
    assert first_line == "external service failed on attempt 2 (configured to fail 99 time(s))", message
    assert traceback.startswith("Traceback (most recent call last):"), message
    assert [failed["attempt"] for failed in broken["failed_attempts"]] == [1]
    assert "output" not in broken

    for skipped in ("use_broken", "output"):
        node = nodes[skipped]
        assert node["status"] == "SKIPPED", skipped
        assert node["attempts"] == 0
        assert node["error"]["type"] == "UpstreamFailed"
        assert "'broken_service'" in node["error"]["message"]
        assert "output" not in node

    flaky = nodes["flaky_service"]
    assert flaky["status"] == "COMPLETED"
    assert flaky["attempts"] == 3
    assert flaky["error"] is None
    assert [failed["attempt"] for failed in flaky["failed_attempts"]] == [1, 2]
    for failed in flaky["failed_attempts"]:
        assert failed["error"]["type"] == "SimulatedServiceError"
        assert f"failed on attempt {failed['attempt']}" in failed["error"]["message"]
    assert flaky["output"]["url"] == "https://example.com/flaky"

    use_flaky = nodes["use_flaky"]
    assert use_flaky["status"] == "COMPLETED"
    assert use_flaky["attempts"] == 1
    assert use_flaky["output"]["prompt"] == f"Summarize {flaky['output']['fetched_content']}"
    assert nodes["input"]["status"] == "COMPLETED"


def test_retry_waits_for_the_exponential_backoff(cli: CliBatch) -> None:
    result = cli["backoff_json"]
    assert result.returncode == 0, result.describe()
    report = result.json()
    flaky = report["nodes"]["flaky"]

    assert report["status"] == "COMPLETED"
    assert flaky["status"] == "COMPLETED"
    assert flaky["attempts"] == 3
    first, second = flaky["failed_attempts"]
    assert (first["attempt"], second["attempt"]) == (1, 2)
    for failed in (first, second):
        assert failed["error"]["type"] == "SimulatedServiceError"
        assert failed["started_at"] is not None
        assert failed["started_at"] < failed["finished_at"]

    # Backoff 0.3 s before attempt 2, then 0.3 * 2 = 0.6 s before attempt 3.
    assert seconds(second["started_at"]) - seconds(first["finished_at"]) >= 0.3 - EPSILON
    assert seconds(flaky["started_at"]) - seconds(second["finished_at"]) >= 0.6 - EPSILON
    assert report["nodes"]["output"]["output"] == {"flaky": flaky["output"]}
