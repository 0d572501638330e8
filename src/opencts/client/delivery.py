"""What an answer of the ingest API means for a batch, and how long to wait before trying again.

Pure functions and a small state object, shared by the sync and the asyncio client, so both treat every
answer alike:

- 200: sent. Per-trace verdicts are counted: accepted, duplicates (a retry of a batch OpenCTS already
  had, or a batch two processes both sent), rejected (invalid traces, logged with their reason).
- 400 with verdicts: every trace was invalid; sending it again cannot help, so the batch is done.
- 408, 425, 429, 5xx, and no answer at all: try again after a backoff, or after ``Retry-After``.
- 401, 403, 404: the client's configuration (keys, clock, project) is wrong, which an operator can fix
  while the batches wait: try again, backing off.
- any other 4xx (413, 415, 422...): this batch can never be taken; it is dropped, counted as rejected.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

__all__ = ["Backoff", "Outcome", "classify", "parse_retry_after"]

RETRY_STATUSES = frozenset({401, 403, 404, 408, 425, 429})
#: the longest Retry-After we honour, so a wrong header cannot park the client for a day
MAX_RETRY_AFTER = 300.0


@dataclass
class Outcome:
    """The verdict on one attempt to send a batch."""

    kind: Literal["done", "retry"]
    status: int | None = None
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    retry_after: float | None = None
    reasons: list[str] = field(default_factory=list)
    error: str | None = None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), capped; None if
    absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = time.time() if now is None else now
    return min(max(when.timestamp() - now, 0.0), MAX_RETRY_AFTER)


def classify(status: int, headers: Any, body: bytes, count: int) -> Outcome:
    """The outcome of an answer ``status`` with ``headers`` (a mapping) and ``body`` to a batch of
    ``count`` traces."""
    if status == 200 or (status == 400 and b'"results"' in body):
        return _verdicts(status, body, count)
    if status in RETRY_STATUSES or status >= 500:
        retry_after = parse_retry_after(headers.get("retry-after")) if status in (429, 503) else None
        return Outcome("retry", status, retry_after=retry_after, error=f"HTTP {status}: {_snippet(body)}")
    return Outcome("done", status, rejected=count, error=f"HTTP {status}: {_snippet(body)}")


def _verdicts(status: int, body: bytes, count: int) -> Outcome:
    try:
        data = orjson.loads(body)
        results = data["results"]
        reasons = [str(r.get("reason", "")) for r in results if r.get("status") == "rejected"]
        return Outcome(
            "done",
            status,
            accepted=int(data.get("accepted", 0)),
            duplicates=int(data.get("duplicates", 0)),
            rejected=len(reasons),
            reasons=reasons,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
        # 200 without readable verdicts: not OpenCTS's ingest answer (a proxy page?); try again later
        return Outcome("retry", status, error=f"HTTP {status} without verdicts: {_snippet(body)}")


def transport_failure(exc: Exception) -> Outcome:
    """No answer: connection refused or reset, timeout. The batch may or may not have arrived, which the
    stable trace ids make harmless."""
    return Outcome("retry", None, error=f"{type(exc).__name__}: {exc}")


def _snippet(body: bytes) -> str:
    return body[:200].decode("utf-8", "replace")


class Backoff:
    """Exponential backoff with full jitter: ``uniform(0, min(max, base * 2**n))`` after the n-th failure in
    a row, so many app processes coming back with OpenCTS do not all knock at once. ``Retry-After`` wins
    when the server gives one."""

    def __init__(self, base: float, maximum: float, *, rng: random.Random | None = None) -> None:
        self.base = base
        self.maximum = maximum
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self, retry_after: float | None = None) -> float:
        self.failures += 1
        if retry_after is not None:
            return retry_after
        ceiling = min(self.maximum, self.base * 2.0 ** min(self.failures - 1, 30))
        return max(self._rng.uniform(0, ceiling), min(self.base, ceiling) / 2)

    def reset(self) -> None:
        self.failures = 0
