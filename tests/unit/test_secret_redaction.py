"""The worker's ``Redactor``: a secret's value, and the forms an echo carries it in, become ``***``
in text, in JSON outputs and in log records (message, traceback, stack); what it cannot recognise
is left as it is."""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import quote

import pytest

from services.runtime.logs import JsonFormatter
from services.worker.redaction import REDACTED, Redactor, install_log_redaction

SECRET = 'k3y"with\\odd/chars é'


@pytest.fixture
def redactor() -> Redactor:
    made = Redactor()
    made.add(SECRET)
    return made


def test_nothing_is_touched_before_a_secret_is_known() -> None:
    empty = Redactor()
    output = {"a": ["b"]}

    assert not empty.active
    assert empty.value(output) is output
    assert empty.text("anything") == "anything"


@pytest.mark.parametrize(
    "echo",
    [
        SECRET,
        json.dumps(SECRET)[1:-1],
        json.dumps(SECRET, ensure_ascii=False)[1:-1],
        repr(SECRET)[1:-1],
        quote(SECRET, safe=""),
    ],
    ids=["as-is", "json-ascii", "json", "repr", "url-encoded"],
)
def test_each_form_an_echo_carries_the_secret_in_is_redacted(redactor: Redactor, echo: str) -> None:
    assert redactor.text(f"before {echo} after {echo}") == f"before {REDACTED} after {REDACTED}"


def test_a_transformed_secret_is_not_recognised(redactor: Redactor) -> None:
    encoded = base64.b64encode(SECRET.encode()).decode()

    assert redactor.text(encoded) == encoded, "documented: base64, hashes, slices are not redacted"


def test_a_json_output_is_redacted_in_every_string_and_key_and_keeps_its_shape(redactor: Redactor) -> None:
    output = {"token": SECRET, SECRET: [f"Bearer {SECRET}", 3, None, True], "n": 1.5}

    assert redactor.value(output) == {
        "token": REDACTED,
        REDACTED: [f"Bearer {REDACTED}", 3, None, True],
        "n": 1.5,
    }
    assert output["token"] == SECRET, "the handler's own object is not changed"


def test_a_longer_secret_containing_a_shorter_one_is_replaced_whole() -> None:
    redactor = Redactor()
    redactor.add("abc")
    redactor.add("xxabcxx")

    assert redactor.text("1 xxabcxx 2 abc") == f"1 {REDACTED} 2 {REDACTED}"


def test_log_records_are_redacted_when_made_message_traceback_and_stack(redactor: Redactor) -> None:
    install_log_redaction(redactor)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("test.redaction")
    keep = Keep(logging.INFO)
    logger.addHandler(keep)
    logger.setLevel(logging.INFO)
    try:
        logger.info("token %s in args", SECRET)
        try:
            raise ValueError(f"bad {SECRET}")
        except ValueError:
            logger.exception("failed", stack_info=True)
    finally:
        logger.removeHandler(keep)
        logger.setLevel(logging.NOTSET)

    message, failure = records
    assert message.getMessage() == f"token {REDACTED} in args"
    text = logging.Formatter().format(failure)
    assert f"ValueError: bad {REDACTED}" in text
    assert SECRET not in text and SECRET not in (failure.stack_info or "")
    document = json.loads(JsonFormatter().format(failure))
    assert f"ValueError: bad {REDACTED}" in document["exception"]
    assert SECRET not in json.dumps(document) and json.dumps(SECRET)[1:-1] not in json.dumps(document)
