"""Sealed batches waiting for OpenCTS: the :class:`Batch`, the :class:`Outbox` interface, and the outbox in
memory. The outbox on disk is :class:`opencts.client.spool.Spool`.

A batch is sealed once (its traces, its id, its body bytes) and then only ever sent as it is, so a retry
posts the very body the first attempt posted: the traces keep their ids and OpenCTS stores each once.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Batch", "Claim", "MemoryOutbox", "Outbox"]


@dataclass(frozen=True)
class Batch:
    """A body for ``POST /v3/{project_id}/traces``: ``{"traces": [...]}`` of ``count`` traces."""

    batch_id: str
    project_id: str
    count: int
    body: bytes

    @staticmethod
    def seal(project_id: str, encoded: list[bytes]) -> Batch:
        """A batch of traces already encoded as JSON objects."""
        body = b'{"traces":[' + b",".join(encoded) + b"]}"
        return Batch(uuid.uuid4().hex, project_id, len(encoded), body)


class Claim(Protocol):
    """A batch taken from an outbox by one sender, until it is done or released."""

    @property
    def batch(self) -> Batch: ...


class Outbox(Protocol):
    """Where sealed batches wait. One sender per process claims them; a claimed batch is invisible to other
    senders until released, and gone once done."""

    def put(self, batch: Batch) -> bool:
        """Keep ``batch`` (durably, for a spool); False when the outbox is full and the batch was dropped."""
        ...

    def waiting(self) -> Iterable[str]:
        """Keys of the waiting batches, oldest first (a snapshot: claim may still find one gone)."""
        ...

    def claim(self, key: str) -> Claim | None:
        """The batch of ``key``, now held by the caller; None if gone or held by another sender."""
        ...

    def done(self, claim: Claim) -> None:
        """Forget the batch: OpenCTS has it (or refused it for good)."""
        ...

    def release(self, claim: Claim) -> None:
        """Give the batch back, to be tried again."""
        ...

    def pending(self) -> tuple[int, int]:
        """Waiting batches and their bytes (this process's view)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class _MemoryClaim:
    key: str
    batch: Batch


class MemoryOutbox:
    """Batches in memory: what an app without a writable disk gets, lost when the process ends."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._batches: dict[str, Batch] = {}
        self._order: deque[str] = deque()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, batch: Batch) -> bool:
        with self._lock:
            if self._bytes + len(batch.body) > self._max_bytes:
                return False
            self._batches[batch.batch_id] = batch
            self._order.append(batch.batch_id)
            self._bytes += len(batch.body)
            return True

    def waiting(self) -> list[str]:
        with self._lock:
            return list(self._order)

    def claim(self, key: str) -> _MemoryClaim | None:
        with self._lock:
            batch = self._batches.get(key)
            if batch is None:
                return None
            return _MemoryClaim(key, batch)

    def done(self, claim: Claim) -> None:
        assert isinstance(claim, _MemoryClaim)
        with self._lock:
            if self._batches.pop(claim.key, None) is not None:
                self._order.remove(claim.key)
                self._bytes -= len(claim.batch.body)

    def release(self, claim: Claim) -> None:
        """Nothing to do: a claimed batch stays in its place until done."""

    def pending(self) -> tuple[int, int]:
        with self._lock:
            return len(self._batches), self._bytes

    def close(self) -> None:
        """Nothing to release."""
