"""The tokens of a ``when`` condition (``domain.conditions``): one linear scan, every error located.

Tokens: quoted strings, JSON numbers, the lowercase JSON names ``true false null``, the words
``and or not in``, templates ``{{ node.path }}`` (parsed by ``domain.templates.parse_reference``),
comparison operators and ``( ) [ ] ,``. Any other name is refused: a condition reads data only
through templates, so ``__class__`` or ``foo`` never mean anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum, auto
from typing import Any

from domain.errors import ConditionError, TemplateError
from domain.templates import Reference, parse_reference


class Kind(Enum):
    LITERAL = auto()
    TEMPLATE = auto()
    COMPARE = auto()
    AND = auto()
    OR = auto()
    NOT = auto()
    IN = auto()
    OPEN = auto()
    CLOSE = auto()
    OPEN_LIST = auto()
    CLOSE_LIST = auto()
    COMMA = auto()
    END = auto()


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    offset: int
    text: str
    value: Any = None
    """The literal's value (LITERAL) or the ``Reference`` (TEMPLATE)."""


_WORDS = {"and": Kind.AND, "or": Kind.OR, "not": Kind.NOT, "in": Kind.IN}
_CONSTANTS: dict[str, Any] = {"true": True, "false": False, "null": None}
_PUNCTUATION = {"(": Kind.OPEN, ")": Kind.CLOSE, "[": Kind.OPEN_LIST, "]": Kind.CLOSE_LIST, ",": Kind.COMMA}
_COMPARISONS = ("==", "!=", "<=", ">=", "<", ">")
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_NUMBER_TAIL = re.compile(r"[A-Za-z0-9_.]")
_SPACE = " \t\r\n"
_MISTAKES = {
    "&&": "use 'and'",
    "||": "use 'or'",
    "!": "use 'not'",
    "=": "use '==' to compare",
    "{": "a template is written {{ node.key }}",
    "}": "a template is written {{ node.key }}",
}


def tokenize(text: str) -> list[Token]:
    """Every token of ``text`` followed by one END token; ``ConditionError`` at the first bad one."""
    tokens: list[Token] = []
    position = 0
    while True:
        while position < len(text) and text[position] in _SPACE:
            position += 1
        if position == len(text):
            tokens.append(Token(Kind.END, position, "end of condition"))
            return tokens
        token = _next_token(text, position)
        tokens.append(token)
        position += len(token.text)


def _next_token(text: str, position: int) -> Token:
    char = text[position]
    if text.startswith("{{", position):
        return _template(text, position)
    if char in "\"'":
        return _string(text, position)
    if char in _PUNCTUATION:
        return Token(_PUNCTUATION[char], position, char)
    for operator in _COMPARISONS:
        if text.startswith(operator, position):
            return Token(Kind.COMPARE, position, operator)
    if char == "-" or char in "0123456789":
        return _number(text, position)
    name = _NAME.match(text, position)
    if name is not None:
        return _word(name.group(), position)
    for mistake, hint in _MISTAKES.items():
        if text.startswith(mistake, position):
            raise ConditionError(f"unexpected '{mistake}' at offset {position}: {hint}", position)
    raise ConditionError(f"unexpected character {char!r} at offset {position}", position)


def _word(word: str, position: int) -> Token:
    if word in _WORDS:
        return Token(_WORDS[word], position, word)
    if word in _CONSTANTS:
        return Token(Kind.LITERAL, position, word, _CONSTANTS[word])
    lowered = {"none": "null"}.get(word.lower(), word.lower())
    if lowered in _WORDS or lowered in _CONSTANTS:
        hint = f"write '{lowered}' in lowercase"
    else:
        hint = "names are not allowed, use a template {{ node.key }} or a quoted string"
    raise ConditionError(f"unexpected '{word}' at offset {position}: {hint}", position)


def _number(text: str, position: int) -> Token:
    match = _NUMBER.match(text, position)
    end = match.end() if match is not None else position
    if match is None or _NUMBER_TAIL.match(text, end):
        raise ConditionError(
            f"invalid number at offset {position}: numbers are written as in JSON (1, -2.5, 3e4)", position
        )
    written = match.group()
    value: int | float = float(written) if any(c in written for c in ".eE") else int(written)
    if value in (float("inf"), float("-inf")):
        raise ConditionError(f"number out of range at offset {position}", position)
    return Token(Kind.LITERAL, position, written, value)


def _string(text: str, start: int) -> Token:
    quote = text[start]
    chars: list[str] = []
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == quote:
            return Token(Kind.LITERAL, start, text[start : position + 1], "".join(chars))
        if char == "\\":
            escaped = text[position + 1 : position + 2]
            if not escaped:
                break
            if escaped not in _ESCAPES:
                raise ConditionError(
                    f"unknown escape '\\{escaped}' at offset {position}: "
                    "a string may use \\\\ \\\" \\' \\n and \\t",
                    position,
                )
            chars.append(_ESCAPES[escaped])
            position += 2
            continue
        chars.append(char)
        position += 1
    raise ConditionError(f"unterminated string starting at offset {start}: add the closing {quote}", start)


def _template(text: str, start: int) -> Token:
    end = text.find("}}", start + 2)
    if end == -1:
        raise ConditionError(f"unclosed '{{{{' at offset {start}: a template ends with '}}}}'", start)
    written = text[start : end + 2]
    try:
        reference: Reference = parse_reference(text[start + 2 : end], written)
    except TemplateError as error:
        raise ConditionError(f"invalid template at offset {start}: {error}", start) from None
    return Token(Kind.TEMPLATE, start, written, reference)
