"""The notifier: a consumer of the trace log that turns key events into SMN messages.

Per batch it parses each trace once, asks the project's compiled :class:`~opencts.notifications.matcher.
Matcher` which notifications it raises, and then, in ONE write transaction, for every (notification,
trace) inserts a row into ``notification_alarms`` (``ON CONFLICT DO NOTHING``) and publishes to the
notification's topic only if that insert took. The alarm record, the SMN message and its outbox rows
commit together, before the runner moves the cursor; so a batch seen again (a crash before the cursor
commit, a second process on the same PostgreSQL) publishes nothing twice, and a batch whose transaction
failed publishes nothing at all and is simply retried: at-least-once processing, at most one alarm per
(notification, trace). On PostgreSQL a concurrent duplicate insert waits for the first transaction and
then does nothing, so two processes cannot both publish either.

A notification of type ``fun`` is a function's CTS trigger (:mod:`opencts.functions.triggers`): the claim
is the same, and instead of a publish the trace's CTS event is queued as an invocation of the function
(``function_invocations``) in that same transaction, so with two nodes on one PostgreSQL only the one
whose claim took hands the trace to the function, and the invocation worker's at-least-once delivery
takes it from there. The function service is woken after the commit.

A topic deleted after the notification was configured is recorded as ``no_topic`` and logged, never
retried: an alarm for a topic that no longer exists cannot become deliverable later. A trigger whose
function is gone is recorded as ``no_function`` for the same reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from sqlalchemy import Connection

from opencts.clock import DAY_MS, HOUR_MS, now_ms
from opencts.errors import BadRequest, NotFound
from opencts.functions import invocations
from opencts.functions import repository as functions_repository
from opencts.functions.event import cts_event_json
from opencts.notifications import alarm, repository
from opencts.notifications.cache import MatcherCache
from opencts.notifications.matcher import Matcher, Notification
from opencts.smn.model import PublishMessage
from opencts.smn.publish import publish
from opencts.store import Database, trace_log

if TYPE_CHECKING:
    from opencts.smn.service import SmnService

log = logging.getLogger(__name__)

PUBLISHED, NO_TOPIC, UNSENDABLE = "published", "no_topic", "unsendable"
INVOKED, NO_FUNCTION = "invoked", "no_function"


class Waker(Protocol):
    """What the notifier wakes after queueing invocations (the function service)."""

    def wake(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Hit:
    """One (notification, trace) to alarm, with its SMN message or, for a function, its CTS event
    already rendered (None: could not be)."""

    notification: Notification
    trace_id: str
    message: PublishMessage | None
    event: bytes | None = None


@dataclass
class AlarmCounts:
    published: int = 0
    deliveries: int = 0
    no_topic: int = 0
    invoked: int = 0
    no_function: int = 0
    unsendable: int = 0
    duplicates: int = 0

    def add(self, other: AlarmCounts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def _claim(conn: Connection, hit: Hit, outcome: str, now: int) -> bool:
    return repository.claim_alarm(conn, hit.notification, hit.trace_id, outcome, now)


def record_alarms(conn: Connection, hits: list[Hit], *, now: int) -> AlarmCounts:
    """Claim each hit and publish the claimed ones; all inside the caller's single transaction."""
    counts = AlarmCounts()
    #: function URN -> func_id (None: gone), looked up once per batch however many traces hit it
    functions: dict[tuple[str, str], str | None] = {}
    for hit in hits:
        n = hit.notification
        if n.notification_type == "fun":
            _invoke(conn, hit, counts, now, functions)
            continue
        if hit.message is None:
            counts.unsendable += _claim(conn, hit, UNSENDABLE, now)
            continue
        if not _claim(conn, hit, PUBLISHED, now):
            counts.duplicates += 1
            continue
        try:
            with conn.begin_nested():
                message_id, queued = publish(
                    conn, project_id=n.project_id, topic_urn=n.topic_id, body=hit.message, now=now
                )
        except NotFound:
            log.warning(
                "notification %s (%s): topic %s no longer exists; alarm for trace %s dropped",
                n.name,
                n.notification_id,
                n.topic_id,
                hit.trace_id,
            )
            repository.settle_alarm(conn, n.notification_id, hit.trace_id, outcome=NO_TOPIC)
            counts.no_topic += 1
            continue
        repository.settle_alarm(conn, n.notification_id, hit.trace_id, message_id=message_id)
        counts.published += 1
        counts.deliveries += queued
    return counts


def _func_id(conn: Connection, project_id: str, urn: str) -> str | None:
    try:
        return functions_repository.get_by_urn(conn, project_id, urn).func_id
    except (NotFound, BadRequest):
        return None


def _invoke(
    conn: Connection, hit: Hit, counts: AlarmCounts, now: int, functions: dict[tuple[str, str], str | None]
) -> None:
    """A CTS trigger's hit: claim it, then queue the invocation, both in the caller's transaction."""
    n = hit.notification
    if hit.event is None:
        counts.unsendable += _claim(conn, hit, UNSENDABLE, now)
        return
    if not _claim(conn, hit, INVOKED, now):
        counts.duplicates += 1
        return
    key = (n.project_id, n.topic_id)
    if key not in functions:
        functions[key] = _func_id(conn, n.project_id, n.topic_id)
    func_id = functions[key]
    if func_id is None:
        log.warning(
            "CTS trigger %s (%s): function %s no longer exists; trace %s not handed over",
            n.name,
            n.notification_id,
            n.topic_id,
            hit.trace_id,
        )
        repository.settle_alarm(conn, n.notification_id, hit.trace_id, outcome=NO_FUNCTION)
        counts.no_function += 1
        return
    invocations.enqueue(
        conn,
        project_id=n.project_id,
        func_id=func_id,
        source="trigger",
        event=hit.event,
        now=now,
        trigger_id=n.notification_id,
        trace_id=hit.trace_id,
    )
    counts.invoked += 1


def render_hit(n: Notification, trace: dict[str, Any]) -> Hit:
    trace_id = str(trace.get("trace_id"))
    if n.notification_type == "fun":
        return Hit(n, trace_id, None, cts_event_json(trace))
    try:
        message: PublishMessage | None = alarm.build(n, trace)
    except ValueError:  # pydantic's ValidationError included; cannot happen for a stored trace
        log.exception("notification %s: cannot render an alarm for trace %s", n.notification_id, trace_id)
        message = None
    return Hit(n, trace_id, message)


class NotifierConsumer:
    """The ``notifier`` consumer (see the module docstring). One per process."""

    name = "notifier"
    batch_size = 1000
    wake_on_append = True
    #: bodies are read only for projects that have notifications (most batches need none)
    with_body = False

    def __init__(
        self,
        db: Database,
        smn: SmnService | None = None,
        *,
        functions: Waker | None = None,
        cache: MatcherCache | None = None,
        poll_seconds: float = 1.0,
        keep_alarms_ms: int = 8 * DAY_MS,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.db = db
        self.smn = smn
        self.functions = functions
        self.cache = cache or MatcherCache()
        self.poll_seconds = poll_seconds
        #: alarm records older than this go: by then their traces have left the log, so cannot come back
        self.keep_alarms_ms = keep_alarms_ms
        self.clock = clock
        self.counts = AlarmCounts()
        self._next_prune = 0

    async def matchers(self, project_ids: set[str]) -> dict[str, Matcher]:
        return {p: await self.cache.get(self.db, p) for p in project_ids}

    async def process(self, rows: list[Any]) -> int | None:
        self.cache.autowarm = True
        # Row attributes are slow (a failed lookup, then __getattr__); positions cost nothing.
        fields = rows[0]._fields
        project_at = fields.index("project_id")
        matchers = await self.matchers({row[project_at] for row in rows})
        hits: list[Hit] = []
        watched = [p for p, m in matchers.items() if not m.empty]
        if watched:  # most batches: nobody to notify, no body to read
            seq_at = fields.index("seq")
            first, last = rows[0][seq_at], rows[-1][seq_at]
            bodies = await self.db.read(lambda conn: trace_log.bodies(conn, first, last, watched))
            for project_id, body in bodies:
                try:
                    trace = orjson.loads(body)
                except orjson.JSONDecodeError:
                    continue  # never written by ingest; skipping it beats blocking alarms forever
                if isinstance(trace, dict):
                    hits.extend(render_hit(n, trace) for n in matchers[project_id].match(trace))
        now = self.clock()
        if now >= self._next_prune:
            self._next_prune = now + HOUR_MS
            cutoff = now - self.keep_alarms_ms
            await self.db.write(lambda conn: repository.prune_alarms(conn, cutoff))
        if not hits:
            return None
        counts = await self.db.write(lambda conn: record_alarms(conn, hits, now=now))
        self.counts.add(counts)
        if counts.deliveries and self.smn is not None:
            self.smn.wake_deliveries()  # the first delivery attempt starts now, not at the worker's next poll
        if counts.invoked and self.functions is not None:
            self.functions.wake()  # the invocation starts now, not at the worker's next poll
        return None
