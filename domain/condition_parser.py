"""The syntax tree of a ``when`` condition and its recursive-descent parser (see ``domain.conditions``).

Every construct that nests (``(``, ``[``, ``not``) counts one level; past ``MAX_CONDITION_DEPTH`` the
parse stops with an error, long before Python's recursion limit. ``and``/``or`` chains are n-ary, so a
long chain is flat, not deep.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.condition_tokens import Kind, Token
from domain.errors import ConditionError
from domain.templates import Reference

MAX_CONDITION_DEPTH = 32
MAX_LIST_ITEMS = 1000


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any


@dataclass(frozen=True, slots=True)
class Template:
    reference: Reference


@dataclass(frozen=True, slots=True)
class ListOf:
    items: tuple[Expression, ...]


@dataclass(frozen=True, slots=True)
class Compare:
    operator: str
    left: Expression
    right: Expression
    offset: int


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expression


@dataclass(frozen=True, slots=True)
class Junction:
    """``and`` (``every`` true) or ``or``; n-ary, so a long chain is flat, not deep."""

    every: bool
    operands: tuple[Expression, ...]


type Expression = Literal | Template | ListOf | Compare | Not | Junction


_OPERAND = "a value (a quoted string, a number, true, false, null, a template {{ node.key }}, '(' or '[')"


class Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.position = 0
        self.depth = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.position]

    def _advance(self) -> Token:
        token = self.tokens[self.position]
        if token.kind is not Kind.END:
            self.position += 1
        return token

    def _unexpected(self, expected: str, why: str = "") -> ConditionError:
        token = self.current
        got = token.text if token.kind is Kind.END else f"'{token.text}'"
        return ConditionError(f"expected {expected} at offset {token.offset}{why}, got {got}", token.offset)

    def _enter(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_CONDITION_DEPTH:
            raise ConditionError(
                f"condition nests deeper than {MAX_CONDITION_DEPTH} levels at offset {token.offset}",
                token.offset,
            )

    def parse(self) -> Expression:
        expression = self._or()
        if self.current.kind is not Kind.END:
            raise self._unexpected("'and', 'or' or the end of the condition")
        return expression

    def _or(self) -> Expression:
        operands = [self._and()]
        while self.current.kind is Kind.OR:
            self._advance()
            operands.append(self._and())
        return operands[0] if len(operands) == 1 else Junction(False, tuple(operands))

    def _and(self) -> Expression:
        operands = [self._not()]
        while self.current.kind is Kind.AND:
            self._advance()
            operands.append(self._not())
        return operands[0] if len(operands) == 1 else Junction(True, tuple(operands))

    def _not(self) -> Expression:
        if self.current.kind is not Kind.NOT:
            return self._comparison()
        self._enter(self._advance())
        operand = self._not()
        self.depth -= 1
        return Not(operand)

    def _comparison(self) -> Expression:
        left = self._primary()
        operator = self._operator()
        if operator is None:
            return left
        offset = self.current.offset
        self._advance()
        if operator == "not in":
            self._advance()
        right = self._primary()
        if self._operator() is not None:
            raise ConditionError(
                f"comparisons cannot be chained (offset {self.current.offset}): "
                "join them with 'and', e.g. 1 < {{ a.n }} and {{ a.n }} < 5",
                self.current.offset,
            )
        return Compare(operator, left, right, offset)

    def _operator(self) -> str | None:
        token = self.current
        if token.kind is Kind.COMPARE:
            return token.text
        if token.kind is Kind.IN:
            return "in"
        if token.kind is Kind.NOT and self.tokens[self.position + 1].kind is Kind.IN:
            return "not in"
        return None

    def _primary(self) -> Expression:
        token = self.current
        if token.kind is Kind.LITERAL:
            self._advance()
            return Literal(token.value)
        if token.kind is Kind.TEMPLATE:
            self._advance()
            return Template(token.value)
        if token.kind is Kind.OPEN:
            self._enter(self._advance())
            inner = self._or()
            if self.current.kind is not Kind.CLOSE:
                raise self._unexpected("')'", f" to close the '(' at offset {token.offset}")
            self._advance()
            self.depth -= 1
            return inner
        if token.kind is Kind.OPEN_LIST:
            return self._list(token)
        raise self._unexpected(_OPERAND)

    def _list(self, opening: Token) -> ListOf:
        self._enter(self._advance())
        items: list[Expression] = []
        if self.current.kind is not Kind.CLOSE_LIST:
            items.append(self._primary())
            while self.current.kind is Kind.COMMA:
                self._advance()
                items.append(self._primary())
                if len(items) > MAX_LIST_ITEMS:
                    raise ConditionError(
                        f"list at offset {opening.offset} has more than {MAX_LIST_ITEMS} items",
                        opening.offset,
                    )
        if self.current.kind is not Kind.CLOSE_LIST:
            raise self._unexpected("',' or ']'", f" to close the '[' at offset {opening.offset}")
        self._advance()
        self.depth -= 1
        return ListOf(tuple(items))
