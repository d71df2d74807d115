"""A shard's lease key holds its holder's consumer name and a token of that holding."""

from __future__ import annotations

import secrets


def encode_lease(holder: str) -> str:
    """A new lease value of ``holder`` (the token tells one holding from the next)."""
    return f"{holder}|{secrets.token_hex(4)}"


def lease_holder(value: str) -> str:
    return value.rpartition("|")[0]
