"""The CADF consumer: oslo.messaging audit notifications from RabbitMQ into the trace log, nothing lost.

AMQP client: aio-pika (over aiormq). It is asyncio-native, so the consumer runs as one more task in
``opencts serve``'s event loop beside the other consumers, with no thread and no second loop; it is
typed, actively maintained, and does publisher confirms and multiple-acks, which this consumer needs.
kombu (what oslo.messaging itself uses) is synchronous; its asyncio port is an alpha.

How a message is never lost and never doubled:

1. ``4 * batch`` messages at most are unacknowledged at a time (basic.qos); they arrive in a local queue.
2. A batch (what has arrived, up to ``batch`` messages, waiting at most ``BATCH_WAIT`` after the first) is
   mapped (:mod:`opencts.sources.cadf`) and written through the ingest path (``TraceWriter.write``:
   validation, tracker policy, the group commit) -- one write per OpenCTS project in the batch.
3. Only once those writes are committed is the batch acknowledged, with one multiple-ack of its last
   delivery tag. A crash before that leaves the messages unacknowledged: RabbitMQ delivers them again,
   and since the trace id is the CADF event id, the second write finds them as duplicates.
4. A message that cannot become a trace (not JSON, not an oslo envelope, a CADF event missing its id or
   time, an OpenStack project that maps to no OpenCTS project, a trace ingest rejects) is published to the
   dead-letter queue ``<queue>.dead`` (durable, bounded, the original body with the reason in the
   ``x-opencts-reason`` header, confirmed by the broker) and acknowledged with its batch: one bad message
   never blocks the queue. Notifications of other kinds on a shared topic (Nova's
   ``compute.instance.*``...) and the pending ``audit.http.request`` are acknowledged and skipped.

The connection is supervised: any failure (the broker restarting, the database failing a write) closes
it, unacknowledged messages return to the queue, and the consumer reconnects after a backoff that
doubles up to ``MAX_BACKOFF`` and resets once a connection is up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractQueue
from aiormq.abc import DeliveredMessage
from pamqp import commands
from pamqp.common import FieldTable
from sqlalchemy import select

from opencts.config import Settings
from opencts.sources.cadf import NotCadf, is_audit, map_notification, unwrap
from opencts.store import Database
from opencts.store.tables import projects
from opencts.traces.submitter import SERVICE, Submitter
from opencts.traces.writer import TraceWriter
from opencts.ttlcache import TtlCache

log = logging.getLogger(__name__)

#: how long a batch waits for more messages after its first one
BATCH_WAIT = 0.05
MAX_BACKOFF = 30.0
#: the dead-letter queue keeps the newest this many messages
DEAD_LETTER_MAX = 100_000
#: how long "this OpenStack project id is (not) an OpenCTS project" is believed
PROJECT_TTL = 60.0
#: how often the consumer logs its counters while messages flow
PROGRESS_SECONDS = 60.0
#: what OpenCTS writes as the submitter of every CADF trace
CADF_SUBMITTER = Submitter({"type": SERVICE, "name": "OpenStack CADF"}, "OpenStack CADF")


@dataclass
class CadfStats:
    """Counters since start, for the log and for tests."""

    traces: int = 0
    duplicates: int = 0
    skipped: int = 0
    dead: int = 0
    connects: int = 0
    reasons: list[str] = field(default_factory=list)


class ProjectMap:
    """OpenStack project id -> OpenCTS project: the one with the same id, else the fallback."""

    def __init__(self, db: Database, fallback: str | None) -> None:
        self.db = db
        self.fallback = fallback
        self._known: TtlCache[str, bool] = TtlCache(ttl=PROJECT_TTL, max_size=10_000)

    async def exists(self, project_id: str) -> bool:
        async def load(_stale: bool | None) -> bool:
            found = await self.db.read(
                lambda conn: conn.execute(select(projects.c.id).where(projects.c.id == project_id)).first()
            )
            return found is not None

        return await self._known.get(project_id, load)

    async def resolve(self, openstack_project: str | None) -> str | None:
        if openstack_project and await self.exists(openstack_project):
            return openstack_project
        if self.fallback and await self.exists(self.fallback):
            return self.fallback
        return None


@dataclass
class _Sorted:
    """A batch sorted out: traces per project (with their messages), dead letters, skipped messages."""

    traces: dict[str, list[tuple[DeliveredMessage, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    dead: list[tuple[DeliveredMessage, str]] = field(default_factory=list)
    skipped: int = 0


class CadfConsumer:
    """Consumes ``<topic>.info`` and writes each CADF event as a trace; see the module docstring."""

    def __init__(
        self,
        *,
        url: str,
        topic: str,
        exchanges: list[str],
        writer: TraceWriter,
        project_map: ProjectMap,
        batch: int = 500,
    ) -> None:
        self.url = url
        self.queue_name = f"{topic}.info"
        self.dead_name = f"{self.queue_name}.dead"
        self.exchanges = exchanges
        self.writer = writer
        self.projects = project_map
        self.batch = batch
        self.stats = CadfStats()
        #: set while a connection is consuming (tests wait for it)
        self.consuming = asyncio.Event()

    async def run_forever(self) -> None:
        """Consume; on any failure, reconnect after a growing backoff. Ends only when cancelled."""
        backoff = 0.5
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker went away, a write failed: unacked messages return
                if self._was_up:  # it had worked: this is a new failure, not the same one again
                    backoff = 0.5
                log.warning("CADF consumer: %s; reconnecting in %.1f s", _describe(exc), backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    _was_up = False

    async def _session(self) -> None:
        self._was_up = False
        # named, so an operator finds it in RabbitMQ's connection list
        name: FieldTable = {"connection_name": f"opencts-cadf {self.queue_name}"}
        connection = await aio_pika.connect(self.url, timeout=10, client_properties=name)
        try:
            queue, channel = await self._declare(connection)
            inbox: asyncio.Queue[DeliveredMessage] = asyncio.Queue()
            # aiormq's own consumer under aio-pika's channel: its delivered messages are plain records, a
            # third of the cost per message of aio-pika's IncomingMessage (measured with benchmarks/cadf.py)
            raw = await channel.get_underlay_channel()
            await raw.basic_consume(queue.name, inbox.put, no_ack=False)
            self.stats.connects += 1
            self._was_up = True
            self.consuming.set()
            log.info("CADF consumer: consuming %s", self.queue_name)
            await self._pipeline(inbox, connection, channel)
        finally:
            self.consuming.clear()
            await connection.close()

    async def _pipeline(
        self,
        inbox: asyncio.Queue[DeliveredMessage],
        connection: AbstractConnection,
        channel: AbstractChannel,
    ) -> None:
        """Sort out batch k+1 while batch k is written (the writer's thread does not hold the GIL through
        SQLite's work); batches are written and acknowledged in order, one at a time."""
        writing: asyncio.Task[None] | None = None
        try:
            while True:
                batch = await self._take(inbox, connection, channel)
                if writing is not None and writing.done():
                    await writing  # a failed write ends the session here, even while idle
                    writing = None
                if not batch:
                    continue
                sorted_ = await self._sort(batch)
                if writing is not None:
                    await writing
                writing = asyncio.create_task(self._write(channel, batch, sorted_))
        finally:
            if writing is not None and not writing.done():
                writing.cancel()
                await asyncio.gather(writing, return_exceptions=True)

    async def _declare(self, connection: AbstractConnection) -> tuple[AbstractQueue, AbstractChannel]:
        """The queue as oslo.messaging's notifier declares it, bound to each exchange, and the dead-letter
        queue. What exists already is taken as it is (a passive declare on a probe channel first), so a
        deployment that made its queues durable or quorum is not refused for a differing argument."""
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=self.batch * 4)
        if not await self._exists(connection, "queue", self.queue_name):
            # oslo.messaging's defaults (amqp_durable_queues = False, amqp_auto_delete = False)
            await channel.declare_queue(self.queue_name, durable=False, auto_delete=False)
        queue = await channel.declare_queue(self.queue_name, passive=True)
        for name in self.exchanges:
            if not await self._exists(connection, "exchange", name):
                await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=False)
            await queue.bind(name, routing_key=self.queue_name)
        await channel.declare_queue(self.dead_name, durable=True, arguments={"x-max-length": DEAD_LETTER_MAX})
        return queue, channel

    @staticmethod
    async def _exists(connection: AbstractConnection, kind: str, name: str) -> bool:
        probe = await connection.channel()
        try:
            if kind == "queue":
                await probe.declare_queue(name, passive=True)
            else:
                await probe.get_exchange(name, ensure=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        finally:
            if not probe.is_closed:
                await probe.close()
        return True

    async def _take(
        self,
        inbox: asyncio.Queue[DeliveredMessage],
        connection: AbstractConnection,
        channel: AbstractChannel,
    ) -> list[DeliveredMessage]:
        """The next batch; [] after a second with nothing (the caller loops), and an error once the
        connection is gone (the messages it had delivered are returned to the queue by the broker)."""
        try:
            first = await asyncio.wait_for(inbox.get(), 1.0)
        except TimeoutError:
            if connection.is_closed or channel.is_closed:
                raise ConnectionError("the AMQP connection closed") from None
            return []
        batch = [first]
        deadline = time.monotonic() + BATCH_WAIT
        while len(batch) < self.batch:
            if inbox.empty():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(inbox.get(), left))
                except TimeoutError:
                    break
            else:
                batch.append(inbox.get_nowait())
        return batch

    async def _write(self, channel: AbstractChannel, batch: list[DeliveredMessage], sorted_: _Sorted) -> None:
        """Write the batch's traces, dead-letter what cannot be traces, then acknowledge it all at once."""
        for project_id, items in sorted_.traces.items():
            results = await self.writer.write(
                project_id, [trace for _, trace in items], submitter=CADF_SUBMITTER, shed=False
            )
            for result in results:
                if result.status == "accepted":
                    self.stats.traces += 1
                elif result.status == "duplicate":
                    self.stats.duplicates += 1
                else:
                    sorted_.dead.append((items[result.index][0], f"rejected: {result.reason}"))
        for message, reason in sorted_.dead:
            await self._dead_letter(channel, message, reason)
        self.stats.skipped += sorted_.skipped
        self._log_progress()
        last = batch[-1]
        await last.channel.basic_ack(_delivery_tag(last), multiple=True)

    _logged_at = 0.0

    def _log_progress(self) -> None:
        """A line a minute while messages flow, so an operator sees the consumer at work."""
        now = time.monotonic()
        if now - self._logged_at < PROGRESS_SECONDS:
            return
        self._logged_at = now
        s = self.stats
        log.info(
            "CADF consumer: %d traces, %d duplicates, %d skipped, %d dead-lettered since start",
            s.traces,
            s.duplicates,
            s.skipped,
            s.dead,
        )

    async def _sort(self, batch: list[DeliveredMessage]) -> _Sorted:
        out = _Sorted()
        for message in batch:
            try:
                note = unwrap(message.body)
                if not is_audit(note.event_type):
                    out.skipped += 1
                    continue
                mapped = map_notification(note)
            except NotCadf as exc:
                out.dead.append((message, str(exc)))
                continue
            except Exception as exc:  # a shape the mapping did not foresee: never a blocked queue
                out.dead.append((message, f"cannot be mapped: {type(exc).__name__}: {exc}"))
                continue
            if mapped is None:
                out.skipped += 1
                continue
            project = await self.projects.resolve(mapped.openstack_project)
            if project is None:
                reason = (
                    f"OpenStack project {mapped.openstack_project!r} is no OpenCTS project and"
                    " OPENCTS_CADF_PROJECT_ID names none"
                )
                out.dead.append((message, reason))
                continue
            out.traces[project].append((message, mapped.trace))
        return out

    async def _dead_letter(self, channel: AbstractChannel, message: DeliveredMessage, reason: str) -> None:
        self.stats.dead += 1
        if len(self.stats.reasons) < 100:
            self.stats.reasons.append(reason)
        log.warning("CADF consumer: dead-lettered a message to %s: %s", self.dead_name, reason[:300])
        headers: dict[str, Any] = {"x-opencts-reason": reason[:1000]}
        if message.routing_key:
            headers["x-original-routing-key"] = message.routing_key
        dead = aio_pika.Message(
            message.body,
            headers=headers,
            content_type=message.header.properties.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await channel.default_exchange.publish(dead, routing_key=self.dead_name)


def _delivery_tag(message: DeliveredMessage) -> int:
    delivery = message.delivery
    if not isinstance(delivery, commands.Basic.Deliver) or delivery.delivery_tag is None:
        raise TypeError(f"not a consumed delivery: {delivery!r}")
    return delivery.delivery_tag


def _describe(exc: BaseException) -> str:
    """An error without the AMQP URL's password (aiormq puts the URL in some messages)."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text.split("amqp://")[0].rstrip(" :(") or type(exc).__name__


def start_cadf(settings: Settings, writer: TraceWriter, db: Database) -> list[asyncio.Task[None]]:
    """The consumer's task when ``OPENCTS_CADF_AMQP_URL`` is set (none otherwise)."""
    if settings.cadf_amqp_url is None:
        return []
    if not settings.cadf_project_id:
        log.warning(
            "OPENCTS_CADF_PROJECT_ID is unset: CADF events of OpenStack projects that are not OpenCTS"
            " projects go to the dead-letter queue"
        )
    consumer = CadfConsumer(
        url=settings.cadf_amqp_url.get_secret_value(),
        topic=settings.cadf_topic,
        exchanges=[e.strip() for e in settings.cadf_exchanges.split(",") if e.strip()],
        writer=writer,
        project_map=ProjectMap(db, settings.cadf_project_id),
        batch=settings.cadf_batch,
    )
    return [asyncio.create_task(consumer.run_forever(), name="cadf")]
