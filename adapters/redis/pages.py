"""Pages of sorted sets scored by creation time, newest first, resumed from a cursor."""

from __future__ import annotations

from adapters.redis.connection import Redis
from domain.paging import Position


async def members_after(
    client: Redis, key: str, after: Position | None, count: int
) -> list[tuple[str, float]]:
    """Up to ``count`` (member, score) pairs of ``key`` that come after ``after``, newest first.

    Members of equal score come in descending member order, as ``Position.is_after`` sorts.
    """
    top: str | float = "+inf" if after is None else after.created_at
    skip_ties = 0
    while True:
        fetched = await client.zrange(
            key, top, "-inf", desc=True, byscore=True, offset=0, num=count + skip_ties, withscores=True
        )
        pairs = [(str(pair[0]), float(pair[1])) for pair in fetched]
        chosen = [(m, s) for m, s in pairs if after is None or after.is_after(s, m)]
        # Members tied with the cursor's score were fetched again and dropped: fetch further.
        if len(chosen) >= count or len(pairs) < count + skip_ties:
            return chosen[:count]
        skip_ties += count
