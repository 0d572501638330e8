"""``TtlCache``: values loaded on a miss and trusted for a few seconds, which an invalidation beats.

Every per-process cache of database state in OpenCTS has the same three needs. A change made in this
process must show at once, so the code making it calls :meth:`TtlCache.invalidate`. A change made by
another process (a second server on the same PostgreSQL) must show within ``ttl``. And a load that was
under way while a change happened must not be cached, or the change would be hidden for a whole ``ttl``:
a generation counter, bumped by every invalidation, tells such a load apart. Callers asking for a key
whose load (of the same generation) is under way share it instead of loading again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    expires: float
    value: V


class TtlCache(Generic[K, V]):
    """Per-key values for ``ttl`` seconds of ``clock``; at most ``max_size`` keys (then it starts over)."""

    def __init__(
        self, ttl: float, clock: Callable[[], float] = time.monotonic, *, max_size: int = 10_000
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self.max_size = max_size
        self._entries: dict[K, _Entry[V]] = {}
        self._generation = 0
        self._loading: dict[K, tuple[int, asyncio.Task[V]]] = {}

    async def get(self, key: K, load: Callable[[V | None], Awaitable[V]]) -> V:
        """The cached value, or ``await load(stale)`` on a miss.

        ``stale`` is the expired value, if any, so a loader can find out cheaply that it is still good.
        """
        now = self.clock()
        entry = self._entries.get(key)
        if entry is not None and entry.expires > now:
            return entry.value
        generation = self._generation
        loading = self._loading.get(key)
        if loading is not None and loading[0] == generation:
            return await asyncio.shield(loading[1])
        task = asyncio.get_running_loop().create_task(_awaited(load(None if entry is None else entry.value)))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved even if nobody waits
        self._loading[key] = (generation, task)
        try:
            value = await asyncio.shield(task)
        finally:
            if self._loading.get(key, (0, None))[1] is task:
                del self._loading[key]
        if generation == self._generation:
            if len(self._entries) >= self.max_size:
                self._entries.clear()
            self._entries[key] = _Entry(now + self.ttl, value)
        return value

    def invalidate(self, key: K | None = None) -> None:
        """Forget ``key`` (every key when None), and keep loads under way from caching what they read."""
        self._generation += 1
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)


async def _awaited(value: Awaitable[V]) -> V:
    return await value
