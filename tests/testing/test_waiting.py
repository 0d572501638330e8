"""Waiting on a condition returns what the condition found, and says what it waited for when it gives up."""

from __future__ import annotations

import itertools

import pytest

from opencts.testing.waiting import until, wait_for


def test_wait_for_returns_the_first_truthy_value() -> None:
    counter = itertools.count()
    assert wait_for(lambda: [n] if (n := next(counter)) >= 3 else [], 5, interval=0) == [3]


def test_wait_for_names_what_never_happened() -> None:
    with pytest.raises(AssertionError, match=r"timed out after 0\.05s waiting for the impossible"):
        wait_for(lambda: False, 0.05, "the impossible", interval=0.01)


async def test_until_takes_plain_and_async_predicates() -> None:
    counter = itertools.count()

    async def probe() -> int:
        return next(counter)

    assert await until(probe, 5, interval=0) == 1
    assert await until(lambda: "done", 5) == "done"
    with pytest.raises(AssertionError, match="waiting for nothing"):
        await until(lambda: 0, 0.05, "nothing", interval=0.01)
