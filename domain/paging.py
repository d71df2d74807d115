"""Cursor pagination, newest first: a cursor names the last item of a page by (created_at, id)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from domain.errors import InvalidInput, Problem

MAX_PAGE_SIZE = 500


@dataclass(frozen=True, slots=True)
class Page[T]:
    items: list[T]
    next_cursor: str | None
    """Pass it back for the next page; None when there is none."""


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ends: items sort by ``created_at`` then ``key``, both descending."""

    created_at: float
    key: str

    def is_after(self, created_at: float, key: str) -> bool:
        """Whether an item at (created_at, key) comes after this position, newest first."""
        return (created_at, key) < (self.created_at, self.key)


def encode_cursor(position: Position) -> str:
    raw = f"{position.created_at!r}|{position.key}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Position | None:
    """The position a cursor names; ``InvalidInput`` at ``$.cursor`` when it is not one of ours."""
    if cursor is None or cursor == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, key = raw.split("|", 1)
        position = Position(float(created_at), key)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput([Problem("$.cursor", "not a cursor this API returned")]) from None
    if not key or position.created_at != position.created_at:  # empty key or NaN
        raise InvalidInput([Problem("$.cursor", "not a cursor this API returned")])
    return position


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput([Problem("$.limit", f"must be between 1 and {MAX_PAGE_SIZE}, got {limit}")])
    return limit
