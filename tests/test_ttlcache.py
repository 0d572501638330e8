"""TtlCache: trusted for ttl, beaten by an invalidation even while a load is under way, loads shared."""

from __future__ import annotations

import asyncio

from opencts.ttlcache import TtlCache


class Source:
    """A value that changes, and counts how often it was read."""

    def __init__(self) -> None:
        self.value = 1
        self.reads = 0
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()

    async def load(self, _stale: int | None) -> int:
        self.reads += 1
        seen = self.value
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        return seen


async def test_value_is_trusted_for_ttl_then_read_again() -> None:
    now = [0.0]
    cache: TtlCache[str, int] = TtlCache(2.0, clock=lambda: now[0])
    source = Source()
    assert await cache.get("k", source.load) == 1
    source.value = 2
    assert await cache.get("k", source.load) == 1 and source.reads == 1
    now[0] = 2.5
    assert await cache.get("k", source.load) == 2 and source.reads == 2


async def test_a_load_that_raced_an_invalidation_is_not_cached() -> None:
    cache: TtlCache[str, int] = TtlCache(60.0)
    source = Source()
    source.gate = asyncio.Event()
    loading = asyncio.ensure_future(cache.get("k", source.load))
    await source.started.wait()  # the load has read the old value and waits at the gate
    source.value = 2
    cache.invalidate("k")
    source.gate.set()
    assert await loading == 1, "the caller that started it gets what it read"
    assert await cache.get("k", source.load) == 2, "... but it was not cached"


async def test_concurrent_misses_share_one_load_and_the_stale_value_is_offered() -> None:
    now = [0.0]
    cache: TtlCache[str, int] = TtlCache(1.0, clock=lambda: now[0])
    source = Source()
    source.gate = asyncio.Event()
    both = asyncio.gather(cache.get("k", source.load), cache.get("k", source.load))
    await source.started.wait()
    source.gate.set()
    assert list(await both) == [1, 1] and source.reads == 1
    offered: list[int | None] = []

    async def remember(stale: int | None) -> int:
        offered.append(stale)
        return 3

    now[0] = 5.0
    assert await cache.get("k", remember) == 3 and offered == [1]


async def test_invalidate_without_a_key_forgets_everything() -> None:
    cache: TtlCache[str, int] = TtlCache(60.0)
    source = Source()
    await cache.get("a", source.load)
    await cache.get("b", source.load)
    cache.invalidate()
    await cache.get("a", source.load)
    await cache.get("b", source.load)
    assert source.reads == 4
