"""``when`` conditions: a small explicit grammar over literals and templates, never ``eval``.

Grammar (lowest precedence first; a comparison takes two operands, ``a < b < c`` is refused)::

    condition  := or
    or         := and ( "or" and )*
    and        := not ( "and" not )*
    not        := "not" not | comparison
    comparison := primary ( ( "==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not" "in" ) primary )?
    primary    := literal | template | "(" or ")" | "[" ( primary ( "," primary )* )? "]"
    literal    := 'string' | "string" | JSON number | true | false | null
    template   := "{{" reference "}}"          (domain.templates.parse_reference)

Values follow JSON (``domain.json_values``); a condition that is not a boolean counts by JSON
truthiness. Parsing is one scan plus recursive descent whose depth is capped before Python's
recursion limit could matter; the text itself is capped in length.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from domain.condition_parser import Compare, Expression, Junction, ListOf, Literal, Not, Parser, Template
from domain.condition_tokens import Kind, tokenize
from domain.errors import ConditionError
from domain.json_values import contains, is_number, json_equal, json_type, shortened, truthy
from domain.templates import Reference

MAX_CONDITION_CHARS = 4096

type Resolve = Callable[[Reference], Any]


@dataclass(frozen=True, slots=True)
class ConditionResult:
    value: bool
    seen: dict[str, Any]
    """Reference text as written (``{{ a.x }}``) -> the value it resolved to, in evaluation order."""
    text: str = ""

    def describe(self) -> str:
        """``condition false: {{ a.n }} > 3 (saw {{ a.n }} = 2)``: the reason a node is skipped."""
        outcome = "true" if self.value else "false"
        described = f"condition {outcome}: {shortened_text(self.text)}"
        if self.seen:
            values = ", ".join(f"{ref} = {shortened(value)}" for ref, value in self.seen.items())
            described += f" (saw {values})"
        return described


def shortened_text(text: str, limit: int = 500) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class Condition:
    text: str
    references: tuple[Reference, ...]
    """Every template in the condition, in order, for the ancestor checks of validation."""
    expression: Expression

    def evaluate(self, resolve: Resolve) -> ConditionResult:
        """Evaluate with ``resolve`` reading each template's value (its TemplateError propagates).

        ``and``/``or`` short-circuit: a reference that is not needed is not resolved. An operator
        given values it cannot compare raises ``ConditionError`` naming both types.
        """
        evaluation = _Evaluation(resolve)
        value = evaluation.value(self.expression)
        return ConditionResult(truthy(value), evaluation.seen, self.text)


def parse_condition(text: str) -> Condition:
    """Parse ``text``; ``ConditionError`` names the offset and what was expected."""
    if len(text) > MAX_CONDITION_CHARS:
        raise ConditionError(f"condition is {len(text)} characters, over the limit of {MAX_CONDITION_CHARS}")
    tokens = tokenize(text)
    if tokens[0].kind is Kind.END:
        raise ConditionError("empty condition: expected an expression such as {{ node.key }} == 'value'", 0)
    expression = Parser(tokens).parse()
    references = tuple(t.value for t in tokens if t.kind is Kind.TEMPLATE)
    return Condition(text, references, expression)


_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class _Evaluation:
    """One evaluation: resolves each reference at most once and records what it saw."""

    def __init__(self, resolve: Resolve) -> None:
        self.resolve = resolve
        self.seen: dict[str, Any] = {}

    def value(self, expression: Expression) -> Any:
        match expression:
            case Literal(value):
                return value
            case Template(reference):
                if reference.text not in self.seen:
                    self.seen[reference.text] = self.resolve(reference)
                return self.seen[reference.text]
            case ListOf(items):
                return [self.value(item) for item in items]
            case Not(operand):
                return not truthy(self.value(operand))
            case Junction(every, operands):
                for operand in operands:
                    if truthy(self.value(operand)) != every:
                        return not every
                return every
            case Compare():
                return self._compare(expression)

    def _compare(self, comparison: Compare) -> bool:
        left, right = self.value(comparison.left), self.value(comparison.right)
        operator = comparison.operator
        if operator in ("==", "!="):
            return json_equal(left, right) == (operator == "==")
        if operator in ("in", "not in"):
            outcome = contains(right, left)
            if isinstance(outcome, str):
                raise ConditionError(f"{outcome} (offset {comparison.offset})", comparison.offset)
            return outcome == (operator == "in")
        if (is_number(left) and is_number(right)) or (isinstance(left, str) and isinstance(right, str)):
            return _ORDERINGS[operator](left, right)
        raise ConditionError(
            f"cannot compare {json_type(left)} {operator} {json_type(right)} at offset {comparison.offset}:"
            " '<', '<=', '>' and '>=' compare two numbers or two strings",
            comparison.offset,
        )
