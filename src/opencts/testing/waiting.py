"""Waiting on a condition instead of sleeping a fixed time.

A fixed sleep is either too short on a loaded machine (a flaky test) or too long everywhere (a slow one);
polling a condition with a deadline is neither. ``until`` polls in an event loop without blocking it (the
loop may be serving the OpenCTS under test); ``wait_for`` blocks a plain thread.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


@overload
async def until(
    predicate: Callable[[], Awaitable[T]], timeout: float = ..., what: str = ..., *, interval: float = ...
) -> T: ...
@overload
async def until(
    predicate: Callable[[], T], timeout: float = ..., what: str = ..., *, interval: float = ...
) -> T: ...
async def until(
    predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition", *, interval: float = 0.02
) -> Any:
    """Poll ``predicate`` (plain or async) until it returns something truthy, and return that.

    Raises AssertionError naming ``what`` once ``timeout`` seconds have passed.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def wait_for(
    predicate: Callable[[], T], timeout: float = 20.0, what: str = "condition", *, interval: float = 0.02
) -> T:
    """Block until ``predicate()`` returns something truthy, and return that; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
    return result
