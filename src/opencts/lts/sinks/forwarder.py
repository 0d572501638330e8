"""The forwarder: each sink a consumer of its stream's records with its own cursor, held by one node at once.

A sink's cursor is its ``position`` (the last line number done) in ``lts_sinks``. A node forwards a sink only
under a lease on its row (``lease_owner``, ``lease_until``), taken by compare-and-set, so with two nodes on
one PostgreSQL each sink is forwarded by one of them; the lease is renewed by every batch and ends
:data:`LEASE_MS` after its holder stops. A lease held by a process of this host that no longer exists
(a node killed and restarted) is taken at once.

One round per sink: read the next batch after the cursor, leave out what the sink's filter refuses, send the
rest, then move the cursor in a transaction that holds only if the lease is still this node's and the cursor
is where the batch started. A batch is sent before its cursor moves, so a crash between the two sends it
again (with the same batch id, which receivers can drop as seen); a failure records ``last_error`` and
retries after a backoff doubling from 0.5 s to ``lts_sink_retry_max_seconds``, always the same batch, so
records go in order and none is skipped.

On PostgreSQL, record ids come from a sequence and a smaller id may commit after a larger one; a batch takes
only records written :data:`SETTLE_MS` ago, so that a slow commit is not passed by the cursor.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection, select, update

from opencts.clock import now_ms
from opencts.config import Settings
from opencts.iam.secrets import SecretBox
from opencts.lts.sinks import repository
from opencts.lts.sinks.batch import Batch, Record, Sink, SinkError
from opencts.lts.sinks.model import compile_filter, host_port
from opencts.lts.sinks.ndjson import NdjsonSender
from opencts.lts.sinks.otlp import OtlpSender
from opencts.lts.sinks.syslog import SyslogSender
from opencts.notifications.matcher import Matcher
from opencts.smn.channels import Links
from opencts.smn.signing import Signer
from opencts.smn.ssrf import EndpointRefused, check_url
from opencts.store import Database
from opencts.store.tables import lts_records, lts_sinks

log = logging.getLogger(__name__)

LEASE_MS = 30_000
#: a lease with less than this left is renewed before a batch (a batch takes at most the send timeout)
RENEW_MS = LEASE_MS // 2
SETTLE_MS = 2_000
TICK_SECONDS = 0.25
BACKOFF_FIRST_SECONDS = 0.5


class Sender(Protocol):
    async def send(self, batch: Batch) -> None: ...

    async def aclose(self) -> None: ...


def node_id() -> str:
    """``host:pid``: unique per process, and telling whether a lease's holder on this host still runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_gone(owner: str | None, host: str) -> bool:
    """Whether ``owner`` is a process of this host that has ended (its lease need not be waited out)."""
    if not owner or ":" not in owner:
        return False
    owner_host, _, pid = owner.rpartition(":")
    if owner_host != host or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def backoff_ms(attempts: int, cap_seconds: float) -> int:
    delay = min(cap_seconds, BACKOFF_FIRST_SECONDS * 2 ** max(0, attempts - 1))
    return int(delay * 1000 * random.uniform(0.8, 1.0))


def due_sinks(conn: Connection, *, now: int) -> list[Any]:
    s = lts_sinks.c
    return list(conn.execute(select(lts_sinks).where(s.next_attempt_at <= now).order_by(s.id)))


def takeable(row: Any, owner: str, host: str, now: int) -> bool:
    """Whether this node may (re)take ``row``'s lease: its own, free, expired, or its holder gone."""
    return bool(
        row.lease_owner == owner
        or row.lease_owner is None
        or row.lease_until < now
        or holder_gone(row.lease_owner, host)
    )


def claim(conn: Connection, owner: str, *, now: int) -> list[Any]:
    """The sinks due now that this node holds, taking free or expired leases by compare-and-set."""
    s = lts_sinks.c
    host = owner.rpartition(":")[0]
    held = []
    for row in due_sinks(conn, now=now):
        if row.lease_owner == owner and row.lease_until - now > RENEW_MS:
            held.append(row)
            continue
        if not takeable(row, owner, host, now):
            continue
        owner_is = s.lease_owner.is_(None) if row.lease_owner is None else s.lease_owner == row.lease_owner
        taken = conn.execute(
            update(lts_sinks)
            .where(s.id == row.id, owner_is, s.lease_until == row.lease_until)
            .values(lease_owner=owner, lease_until=now + LEASE_MS)
            .returning(s.id)
        ).first()
        if taken is not None:
            held.append(row)  # its lease columns are as read; nothing after the claim uses them
    return held


def read_batch(conn: Connection, sink: Any, *, limit: int, before: int | None) -> list[Any]:
    r = lts_records.c
    stmt = select(r.id, r.trace_id, r.time, r.record_time, r.content).where(
        r.stream_id == sink.stream_id, r.id > sink.position
    )
    if before is not None:
        stmt = stmt.where(r.record_time <= before)
    return list(conn.execute(stmt.order_by(r.id).limit(limit)))


def _mine(owner: str) -> Any:
    return lts_sinks.c.lease_owner == owner


def record_success(
    conn: Connection, sink_id: str, owner: str, *, start: int, end: int, sent: int, now: int
) -> bool:
    """Move the cursor from ``start`` to ``end``; False if the lease or the cursor moved meanwhile."""
    s = lts_sinks.c
    values: dict[str, Any] = {
        "position": end,
        "delivered": s.delivered + sent,
        "attempts": 0,
        "next_attempt_at": 0,
        "lease_until": now + LEASE_MS,
    }
    if sent:
        values["last_delivered_at"] = now
    moved = conn.execute(
        update(lts_sinks)
        .where(s.id == sink_id, _mine(owner), s.position == start)
        .values(values)
        .returning(s.id)
    ).first()
    return moved is not None


def record_failure(
    conn: Connection, sink_id: str, owner: str, *, error: str, retry_at: int, now: int
) -> None:
    s = lts_sinks.c
    conn.execute(
        update(lts_sinks)
        .where(s.id == sink_id, _mine(owner))
        .values(attempts=s.attempts + 1, next_attempt_at=retry_at, last_error=error, last_error_at=now)
    )


def _trace(content: str) -> dict[str, Any]:
    try:
        trace = orjson.loads(content)
    except orjson.JSONDecodeError:
        return {}
    return trace if isinstance(trace, dict) else {}


@dataclass
class _Loaded:
    sink: Sink
    matcher: Matcher | None
    sender: Sender


class SinkForwarder:
    """Forwards every sink this node holds, one batch per sink per round (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        signer: Signer,
        *,
        cert_url: str,
        timeout: float = 10.0,
        retry_max_seconds: float = 60.0,
        allow_private: bool = False,
        owner: str | None = None,
    ) -> None:
        self.db = db
        self.box = box
        self.signer = signer
        self.cert_url = cert_url
        self.timeout = timeout
        self.retry_max_seconds = retry_max_seconds
        self.allow_private = allow_private
        self.owner = owner or node_id()
        self.settle_ms = 0 if db.is_sqlite else SETTLE_MS
        self._loaded: dict[str, _Loaded] = {}

    def _load(self, row: Any) -> _Loaded:
        found = self._loaded.get(row.id)
        if found is not None:
            return found
        sink = Sink(
            sink_id=row.id,
            project_id=row.project_id,
            group_id=row.group_id,
            stream_id=row.stream_id,
            name=row.name,
            sink_type=row.sink_type,
            endpoint=row.endpoint,
            settings=orjson.loads(row.settings),
            secrets=repository.open_secrets(self.box, row.id, row.secrets),
            filter=orjson.loads(row.filter),
        )
        sender: Sender
        if sink.sink_type == "syslog":
            sender = SyslogSender(timeout=self.timeout)
        elif sink.sink_type == "otlp":
            sender = OtlpSender(timeout=self.timeout)
        else:
            sender = NdjsonSender(self.signer, self.cert_url, timeout=self.timeout)
        loaded = self._loaded[row.id] = _Loaded(
            sink, compile_filter(row.id, row.project_id, sink.filter), sender
        )
        return loaded

    async def _forget(self, keep: set[str]) -> None:
        for sink_id in [k for k in self._loaded if k not in keep]:
            await self._loaded.pop(sink_id).sender.aclose()

    async def step(self) -> tuple[int, bool]:
        """One round: returns (records sent, whether a sink has more waiting at once)."""
        now = now_ms()
        due = await self.db.read(lambda conn: due_sinks(conn, now=now))
        host = self.owner.rpartition(":")[0]
        fresh = [r for r in due if r.lease_owner == self.owner and r.lease_until - now > RENEW_MS]
        if len(fresh) < len(due) and any(takeable(r, self.owner, host, now) for r in due):
            held = await self.db.write(lambda conn: claim(conn, self.owner, now=now))
        else:  # nothing to take: no write this round (a second node does not write while the first holds)
            held = fresh
        # sinks removed, waiting out a backoff or held by another node: close their connections
        await self._forget({r.id for r in held})
        results = await asyncio.gather(*(self._forward(row) for row in held))
        return sum(n for n, _ in results), any(more for _, more in results)

    async def _forward(self, row: Any) -> tuple[int, bool]:
        try:
            loaded = self._load(row)
        except Exception as exc:  # a secret that does not open: shown on the sink, never its value
            await self._failed(row, f"cannot load the sink: {type(exc).__name__}")
            return 0, False
        limit = int(loaded.sink.settings.get("batch_size", 100))
        before = now_ms() - self.settle_ms if self.settle_ms else None
        found = await self.db.read(lambda conn: read_batch(conn, row, limit=limit, before=before))
        if not found:
            return 0, False
        records = []
        # an NDJSON sink without a filter sends the stored text as it is: no record needs parsing
        parse = loaded.matcher is not None or loaded.sink.sink_type != "ndjson"
        for r in found:
            trace = _trace(r.content) if parse else {}
            if loaded.matcher is None or loaded.matcher.match(trace):
                records.append(
                    Record(int(r.id), r.trace_id, int(r.time), int(r.record_time), r.content, trace)
                )
        batch = Batch(loaded.sink, int(found[0].id), int(found[-1].id), records)
        if records:
            try:
                await self._check_endpoint(loaded.sink)
                async with asyncio.timeout(self.timeout * 2):
                    await loaded.sender.send(batch)
            except (SinkError, EndpointRefused, TimeoutError) as exc:
                await self._failed(row, str(exc) or type(exc).__name__)
                return 0, False
        start, end, now = int(row.position), batch.last, now_ms()
        moved = await self.db.write(
            lambda conn: record_success(
                conn, row.id, self.owner, start=start, end=end, sent=len(records), now=now
            )
        )
        if not moved:
            log.warning("LTS sink %s: the lease moved while a batch was sent; leaving it", row.id)
            self._loaded.pop(row.id, None)
            return len(records), False
        return len(records), len(found) == limit

    async def _check_endpoint(self, sink: Sink) -> None:
        if self.allow_private:
            return
        if sink.sink_type == "syslog":
            host, port = host_port(sink.endpoint)
            await check_url(f"syslog://{host}:{port}", allow_private=False)
        else:
            await check_url(sink.endpoint, allow_private=False)

    async def _failed(self, row: Any, error: str) -> None:
        now = now_ms()
        retry_at = now + backoff_ms(int(row.attempts) + 1, self.retry_max_seconds)
        log.warning("LTS sink %s (%s) failed: %s", row.id, row.sink_type, error)
        await self.db.write(
            lambda conn: record_failure(
                conn, row.id, self.owner, error=error[:1000], retry_at=retry_at, now=now
            )
        )

    async def drain(self, rounds: int = 1000) -> int:
        """Rounds until no sink has more at once; for tests and benchmarks."""
        total = 0
        for _ in range(rounds):
            sent, more = await self.step()
            total += sent
            if not more:
                break
        return total

    async def run_forever(self) -> None:
        while True:
            try:
                _, more = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("LTS sinks: a round failed; retrying in %.2fs", TICK_SECONDS)
                more = False
            if not more:
                await asyncio.sleep(TICK_SECONDS)

    async def aclose(self) -> None:
        await self._forget(set())


def start_sinks(db: Database, settings: Settings, box: SecretBox, signer: Signer) -> list[asyncio.Task[None]]:
    """The forwarder as a task of the server (``create_app``'s lifespan)."""
    forwarder = SinkForwarder(
        db,
        box,
        signer,
        cert_url=Links(settings.resolved_public_url, signer).signing_cert,
        timeout=settings.lts_sink_timeout_seconds,
        retry_max_seconds=settings.lts_sink_retry_max_seconds,
        allow_private=settings.allow_private_endpoints or settings.lts_sink_allow_private_endpoints,
    )

    async def run() -> None:
        try:
            await forwarder.run_forever()
        finally:
            await forwarder.aclose()

    return [asyncio.create_task(run(), name="lts-sinks")]
