"""The data a map's items read, read once per map and worker (``domain.map_spec``).

Every item of a map reads the same data (its node's parents and input, all ended before the map
started, so unchanged while it runs): a worker reads it once, keeps it for the map's life (a
redrive starts a new one, which may read new data), and gives each item its own ``item`` and
``index``. Without this, a map of n items would read its list n times: O(n²).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from domain.errors import TemplateError
from domain.json_values import copy_json, json_type
from domain.map_spec import ATTEMPTS_PER_LIFE, INDEX, ITEM
from domain.plan import NodeSpec

MAPS_KEPT = 16
"""Maps whose data a worker keeps at once (least recently used dropped first)."""

type Loader = Callable[[], Awaitable[dict[str, Any]]]


class MapInputs:
    def __init__(self, kept: int = MAPS_KEPT) -> None:
        self._kept = kept
        self._maps: OrderedDict[tuple[str, str, int], asyncio.Future[dict[str, Any]]] = OrderedDict()

    async def for_item(
        self, run_id: str, spec: NodeSpec, item: int, attempt: int, load: Loader
    ) -> dict[str, Any]:
        """The data of item ``item`` of map ``spec``: the map's data with ``item`` and ``index``.
        Raises ``TemplateError`` when the item is not in the list (a list changed under the map)."""
        assert spec.map is not None
        key = (run_id, spec.id, (attempt - 1) // ATTEMPTS_PER_LIFE)
        data = await self._data(key, load)
        items = spec.map.source.resolve_in(data)
        if not isinstance(items, list) or item >= len(items):
            raise TemplateError(
                f"for_each '{spec.map.source.text}' has no item {item} (got {json_type(items)})"
            )
        # The item is the item's own (a handler may change it); the rest is shared: read only.
        return {**data, ITEM: copy_json(items[item]), INDEX: item}

    async def _data(self, key: tuple[str, str, int], load: Loader) -> dict[str, Any]:
        loading = self._maps.get(key)
        if loading is None:
            loading = asyncio.ensure_future(load())
            self._maps[key] = loading
            while len(self._maps) > self._kept:
                self._maps.popitem(last=False)
        else:
            self._maps.move_to_end(key)
        try:
            return await asyncio.shield(loading)
        except BaseException:
            if loading.done() and (loading.cancelled() or loading.exception() is not None):
                self._maps.pop(key, None)  # the next item reads again
            raise
