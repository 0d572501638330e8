"""What the sync and the asyncio client share: the buffer traces are recorded into, sealing it into
batches, the outbox, the counters, and what each outcome does to them.

Recording never waits and never fails: it appends to a bounded in-memory buffer (a ``deque``, safe to
append from any thread) and drops the trace, counting it, when the buffer is full. All I/O happens in the
client's own flusher (a thread, or a task), which seals the buffer into batches every ``flush_interval``
or as soon as a batch's worth is waiting, puts them in the outbox (the spool on disk by default), and
sends what the outbox holds, oldest first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import orjson

from opencts.client.delivery import Backoff, Outcome
from opencts.client.outbox import Batch, Claim, MemoryOutbox, Outbox
from opencts.client.recording import Resource, make_trace
from opencts.client.settings import ClientSettings
from opencts.client.signing import HmacAuth
from opencts.client.spool import Spool

__all__ = ["BaseClient", "Stats"]

log = logging.getLogger("opencts.client")

#: bytes of ``{"traces":[]}`` around a batch's traces
_ENVELOPE = 13
#: at most one warning per reason this often, so an outage does not flood the app's log
_WARN_EVERY = 60.0


@dataclass
class Stats:
    """Counters since the client started (this process). ``dropped_*`` are traces lost on purpose,
    because a bound was reached; every other trace recorded is sent, waiting, or rejected by OpenCTS."""

    recorded: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    dropped_buffer_full: int = 0
    dropped_outbox_full: int = 0
    batches_sent: int = 0
    send_failures: int = 0
    buffered: int = 0
    pending_batches: int = 0
    pending_bytes: int = 0

    @property
    def dropped(self) -> int:
        return self.dropped_buffer_full + self.dropped_outbox_full

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "dropped": self.dropped}


class BaseClient:
    """The state both clients keep; subclasses run the flusher."""

    def __init__(self, settings: ClientSettings | None = None) -> None:
        self.settings = settings if settings is not None else ClientSettings()
        s = self.settings
        if s.enabled and not (s.project_id and s.access_key and s.secret_key.get_secret_value()):
            # said at start, where a deploy shows it, rather than as traces that can never be sent
            raise ValueError(
                "OpenCTS client: set OPENCTS_CLIENT_PROJECT_ID, OPENCTS_CLIENT_ACCESS_KEY and"
                " OPENCTS_CLIENT_SECRET_KEY (or OPENCTS_CLIENT_ENABLED=false)"
            )
        self._buffer: deque[dict[str, Any]] = deque()
        self._stats = Stats()
        self._drop_lock = threading.Lock()
        self._wake_at = s.batch_max_traces
        #: whether the flusher runs; until it does every record wakes it (the asyncio client starts it so)
        self._started = True
        self._last_warning: dict[str, float] = {}
        self.backoff = Backoff(s.retry_base, s.retry_max)
        #: when the flusher may send next (monotonic); a flush or a close brings it forward to ...
        self._retry_at = 0.0
        #: ... the time the server named with ``Retry-After``, which nothing brings forward: sending
        #: earlier only earns another 429 and tells a rate limiter the client does not listen
        self._not_before = 0.0
        self._flush_requested = False
        self._sealing = 0
        self._stopping = False
        self._deadline = 0.0
        self.outbox: Outbox = self._open_outbox()
        #: the project's own signer (``opencts.client.signing``): what the server verifies, as the SDK signs
        self._signer = HmacAuth(s.access_key, s.secret_key.get_secret_value())

    def _open_outbox(self) -> Outbox:
        s = self.settings
        directory = s.resolved_spool_dir()
        if directory is None:
            return MemoryOutbox(s.spool_max_bytes)
        return Spool(directory, max_bytes=s.spool_max_bytes, fsync=s.spool_fsync)

    def _url(self, batch: Batch) -> str:
        return f"{self.settings.endpoint.rstrip('/')}/v3/{batch.project_id}/traces"

    @staticmethod
    def _headers(batch: Batch) -> dict[str, str]:
        return {"Content-Type": "application/json", "X-Opencts-Batch-Id": batch.batch_id}

    # -- recording (any thread, never blocks) ------------------------------------------------------------

    def record(
        self,
        trace_name: str,
        *,
        user: str | Mapping[str, Any] | None = None,
        resource: Resource | None = None,
        status: int | None = None,
        **fields: Any,
    ) -> str | None:
        """Record one operation; returns its trace id, or None if it was not kept (disabled, or dropped
        because the buffer is full). Any field of the trace structure may be given as a keyword."""
        if not self.settings.enabled:
            return None
        trace = make_trace(
            trace_name,
            service_type=self.settings.service_type,
            user=user,
            resource=resource,
            status=status,
            **fields,
        )
        return str(trace["trace_id"]) if self.record_trace(trace) else None

    def record_trace(self, trace: dict[str, Any]) -> bool:
        """Queue a trace built by the caller (it should carry a ``trace_id``, or retries may repeat it)."""
        if not self.settings.enabled:
            return False
        buffer = self._buffer
        if len(buffer) >= self.settings.buffer_max_traces:
            with self._drop_lock:
                self._stats.dropped_buffer_full += 1
            self._warn("buffer", "OpenCTS client buffer full: dropping traces (see stats().dropped)")
            return False
        buffer.append(trace)
        self._stats.recorded += 1  # a lost increment under a thread race only skews a counter
        if len(buffer) >= self._wake_at or not self._started:
            self._wake()
        return True

    def _wake(self) -> None:
        """Tell the flusher a batch's worth is waiting."""

    # -- the flusher's work ------------------------------------------------------------------------------

    def seal(self) -> int:
        """Move everything buffered into the outbox as batches; returns the batches put. Blocking I/O."""
        s = self.settings
        self._sealing += 1  # traces in hand are neither buffered nor in the outbox: not idle
        try:
            put = self._seal(s)
        finally:
            self._sealing -= 1
        return put

    def _seal(self, s: ClientSettings) -> int:
        encoded: list[bytes] = []
        size = _ENVELOPE
        put = 0
        while self._buffer:
            trace = self._buffer.popleft()
            data = orjson.dumps(trace)
            if encoded and (len(encoded) >= s.batch_max_traces or size + len(data) + 1 > s.batch_max_bytes):
                put += self._put(encoded)
                encoded, size = [], _ENVELOPE
            encoded.append(data)
            size += len(data) + 1
        if encoded:
            put += self._put(encoded)
        return put

    def _put(self, encoded: list[bytes]) -> int:
        batch = Batch.seal(self.settings.project_id, encoded)
        try:
            kept = self.outbox.put(batch)
        except OSError as exc:
            log.error("OpenCTS client: cannot spool a batch (%s); %d traces dropped", exc, batch.count)
            kept = False
        if not kept:
            with self._drop_lock:
                self._stats.dropped_outbox_full += batch.count
            self._warn("outbox", "OpenCTS client outbox full: dropping new batches (see stats().dropped)")
        return int(kept)

    def settle(self, claim: Claim, outcome: Outcome) -> float | None:
        """Apply ``outcome`` to the claimed batch: forget it, or give it back and return the delay before
        the next attempt."""
        batch = claim.batch
        if outcome.kind == "retry":
            self.outbox.release(claim)
            self._stats.send_failures += 1
            delay = self.backoff.next_delay(outcome.retry_after)
            now = time.monotonic()
            self._retry_at = now + delay
            self._not_before = now + delay if outcome.retry_after is not None else 0.0
            self._warn(
                f"retry{outcome.status}",
                f"OpenCTS unavailable ({outcome.error}); batches wait in the outbox,"
                f" next try in {delay:.1f}s",
            )
            return delay
        self.backoff.reset()
        st = self._stats  # counted before the batch leaves the outbox, so an idle client's stats are whole
        st.batches_sent += 1
        st.accepted += outcome.accepted
        st.duplicates += outcome.duplicates
        st.rejected += outcome.rejected
        self.outbox.done(claim)
        if outcome.rejected:
            why = outcome.error or "; ".join(sorted(set(outcome.reasons))[:3])
            log.warning("OpenCTS rejected %d traces of batch %s: %s", outcome.rejected, batch.batch_id, why)
        return None

    def _take_flush_request(self) -> None:
        """In the flusher: a pending ``flush()`` skips the backoff, not a server's ``Retry-After``."""
        if self._flush_requested:
            self._flush_requested = False
            self._retry_at = self._not_before

    def _due(self) -> bool:
        return time.monotonic() >= self._retry_at

    def _begin_stop(self, wait: float) -> None:
        """Send what is waiting for up to ``wait`` seconds, then stop (the flusher is woken by the caller)."""
        self._deadline = time.monotonic() + wait
        self._retry_at = self._not_before
        self._stopping = True

    def _past_deadline(self) -> bool:
        return self._stopping and time.monotonic() > self._deadline

    def idle(self) -> bool:
        """Nothing buffered and nothing waiting in this process's view of the outbox."""
        # in this order: a seal takes traces from the buffer only after raising ``_sealing``, and puts
        # them in the outbox before lowering it
        return not self._buffer and not self._sealing and self.outbox.pending()[0] == 0

    def stats(self) -> Stats:
        """A snapshot of the counters."""
        batches, size = self.outbox.pending()
        snap = Stats(**asdict(self._stats))
        snap.buffered, snap.pending_batches, snap.pending_bytes = len(self._buffer), batches, size
        return snap

    def _warn(self, key: str, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning.get(key, -_WARN_EVERY) >= _WARN_EVERY:
            self._last_warning[key] = now
            log.warning(message)


def response_parts(resp: httpx.Response) -> tuple[int, httpx.Headers, bytes]:
    return resp.status_code, resp.headers, resp.content
