"""The prompt of ``call_llm_service``, formatted with the node's config as the seed does
(``prompt.format(**config)``), by a formatter that reads plain names only. Values are not
formatted again, so text put into the prompt through a key may hold braces.

``str.format`` reaches attributes and items (``{a.__class__}``, ``{a[0]}``) and pads to any width
(``{a:999999999}``); a prompt comes from a definition, so it gets neither.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

from services.worker.registry import NonRetryableError

PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_SPEC_NUMBER = 9999
SPEC_NUMBER = re.compile(r"\d+")
# ``{{`` would begin a template, so a literal brace cannot be written doubled in a definition.
LITERAL_BRACES = "literal braces go in a config value that the prompt names, e.g. {example}"


class PromptKeyMissing(NonRetryableError):
    """The prompt names a field the node's config does not have."""


class PromptFormatError(NonRetryableError):
    """The prompt is not a format string this formatter accepts."""


class PlainNameFormatter(string.Formatter):
    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if not PLAIN_NAME.fullmatch(field_name):
            raise PromptFormatError(
                f"prompt field {{{field_name}}} is not a plain name: only {{name}} of a config key is "
                "allowed (no positions, attributes or indexes); " + LITERAL_BRACES
            )
        if field_name not in kwargs:
            known = ", ".join(sorted(kwargs)) or "none"
            raise PromptKeyMissing(
                f"prompt refers to {{{field_name}}} but the node's config has no key '{field_name}' "
                f"(its keys: {known}); " + LITERAL_BRACES
            )
        return kwargs[field_name], field_name

    def format_field(self, value: Any, format_spec: str) -> Any:
        if any(int(number) > MAX_SPEC_NUMBER for number in SPEC_NUMBER.findall(format_spec)):
            raise PromptFormatError(f"prompt format spec {format_spec!r} asks for over {MAX_SPEC_NUMBER}")
        return super().format_field(value, format_spec)


FORMATTER = PlainNameFormatter()


def format_prompt(prompt: str, config: Mapping[str, Any]) -> str:
    try:
        return FORMATTER.vformat(prompt, (), config)
    except (PromptKeyMissing, PromptFormatError):
        raise
    except (ValueError, TypeError) as error:  # unbalanced braces, a spec the value cannot take
        raise PromptFormatError(f"prompt is not a valid format string: {error}") from None
