"""LTS triggers: batches of a log stream's new records invoke a function (FunctionGraph trigger type ``LTS``).

A trigger's ``event_data`` is ``{log_group_id, log_topic_id}`` as FunctionGraph takes it, plus OpenCTS's
``batch_size`` (records per invocation, 1-10,000, default 100) and ``polling_interval`` (seconds between
looks, 1-3,600, default 1). It is a ``function_triggers`` row (no notification behind it, unlike a CTS
trigger) and a cursor of its own, ``lts-trigger:{id}`` in ``consumer_cursors``: the last record (line
number) handed over. A new trigger starts at the stream's end (records from now on).

Handing over is one transaction: the cursor moves by compare-and-set and the invocation is queued in
``function_invocations``. So a batch is queued once (a second node whose compare-and-set fails queues
nothing), and from there runs at least once with the invocation queue's retries and dead letters, as a CTS
trigger's invocations do. Records of the function's own calls (``made_by``) are passed over, so a
handler that alarms on what it reads never reads its own alarm. The function receives what FunctionGraph
hands an LTS-triggered function:
``{"lts": {"data": base64(JSON)}}``, the JSON holding ``logs`` (each ``message``, ``time``, ``host_name``,
``ip``, ``path``, ``log_uid``, ``line_no``), ``owner``, ``log_group_id`` and ``log_topic_id``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlalchemy import Connection, delete, func, insert, select, update

from opencts.clock import iso_ms, now_ms
from opencts.errors import BadRequest, NotFound
from opencts.functions import invocations
from opencts.functions.repository import FunctionRecord
from opencts.store import Database
from opencts.store.tables import (
    consumer_cursors,
    function_triggers,
    functions,
    lts_records,
    lts_streams,
    projects,
)
from opencts.store.upsert import insert_ignore
from opencts.validation import describe

TYPE = "LTS"
#: how often the feeder looks for due triggers (each trigger waits its own ``polling_interval``)
TICK_SECONDS = 0.5
#: what ``host_name`` and ``path`` say: the records come from OpenCTS's trace log, not a host's file
HOST_NAME = "opencts"

log = logging.getLogger(__name__)

Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class LtsEventData(BaseModel):
    """An LTS trigger's ``event_data``."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    log_group_id: Id
    log_topic_id: Id
    batch_size: int = Field(100, ge=1, le=10_000)
    polling_interval: int = Field(1, ge=1, le=3600)


def parse_event_data(data: dict[str, Any]) -> LtsEventData:
    try:
        return LtsEventData.model_validate(data)
    except ValidationError as exc:
        raise BadRequest("event_data." + describe(exc)) from None


def cursor_name(trigger_id: str) -> str:
    return f"lts-trigger:{trigger_id}"


def _check_stream(conn: Connection, project_id: str, data: LtsEventData) -> None:
    found = conn.execute(
        select(lts_streams.c.id).where(
            lts_streams.c.id == data.log_topic_id,
            lts_streams.c.group_id == data.log_group_id,
            lts_streams.c.project_id == project_id,
        )
    ).first()
    if found is None:
        raise NotFound(
            f"log stream {data.log_topic_id} does not exist in log group {data.log_group_id} of project"
            f" {project_id} (a tracker with is_lts_enabled makes it)"
        )


def render(row: Any) -> dict[str, Any]:
    return {
        "trigger_id": row.trigger_id,
        "trigger_type_code": TYPE,
        "trigger_status": row.status,
        "event_data": orjson.loads(row.event_data),
        "last_updated_time": iso_ms(int(row.updated_at)),
        "created_time": iso_ms(int(row.created_at)),
    }


def create(
    conn: Connection, *, function: FunctionRecord, status: str, event_data: dict[str, Any], now: int
) -> dict[str, Any]:
    """CreateFunctionTrigger for type LTS: the row and its cursor at the stream's end."""
    data = parse_event_data(event_data)
    _check_stream(conn, function.project_id, data)
    trigger_id = str(uuid.uuid4())
    conn.execute(
        insert(function_triggers).values(
            trigger_id=trigger_id,
            project_id=function.project_id,
            func_id=function.func_id,
            trigger_type_code=TYPE,
            status=status,
            event_type_code=None,
            event_data=orjson.dumps(data.model_dump()).decode(),
            notification_id=None,
            created_at=now,
            updated_at=now,
        )
    )
    end = conn.execute(
        select(func.max(lts_records.c.id)).where(lts_records.c.stream_id == data.log_topic_id)
    ).scalar()
    conn.execute(
        insert(consumer_cursors).values(name=cursor_name(trigger_id), position=int(end or 0), updated_at=now)
    )
    return show(conn, function=function, trigger_id=trigger_id)


def _rows(conn: Connection, function: FunctionRecord) -> list[Any]:
    stmt = select(function_triggers).where(
        function_triggers.c.func_id == function.func_id, function_triggers.c.trigger_type_code == TYPE
    )
    return list(conn.execute(stmt.order_by(function_triggers.c.created_at, function_triggers.c.trigger_id)))


def list_triggers(conn: Connection, *, function: FunctionRecord) -> list[dict[str, Any]]:
    return [render(r) for r in _rows(conn, function)]


def _find(conn: Connection, function: FunctionRecord, trigger_id: str) -> Any:
    for row in _rows(conn, function):
        if row.trigger_id == trigger_id:
            return row
    raise NotFound(f"function {function.func_urn} has no {TYPE} trigger {trigger_id}")


def show(conn: Connection, *, function: FunctionRecord, trigger_id: str) -> dict[str, Any]:
    return render(_find(conn, function, trigger_id))


def update_trigger(
    conn: Connection,
    *,
    function: FunctionRecord,
    trigger_id: str,
    status: str | None,
    event_data: dict[str, Any] | list[dict[str, Any]] | None,
    now: int,
) -> dict[str, Any]:
    """UpdateTrigger: a new status and/or new ``batch_size``/``polling_interval`` (the stream stays)."""
    row = _find(conn, function, trigger_id)
    current: dict[str, Any] = orjson.loads(row.event_data)
    changes: dict[str, Any] = {}
    items = event_data if isinstance(event_data, list) else [event_data or {}]
    for item in items:  # the SDK's UpdateTriggerEventData is a list of settings objects
        changes.update({k: v for k, v in item.items() if v is not None})
    for name in ("log_group_id", "log_topic_id"):
        if name in changes and changes[name] != current[name]:
            raise BadRequest(f"event_data.{name} of an LTS trigger cannot change; create another trigger")
    data = parse_event_data({**current, **changes})
    values: dict[str, Any] = {"event_data": orjson.dumps(data.model_dump()).decode(), "updated_at": now}
    if status is not None:
        values["status"] = status
    conn.execute(update(function_triggers).where(function_triggers.c.trigger_id == trigger_id).values(values))
    return show(conn, function=function, trigger_id=trigger_id)


def delete_trigger(conn: Connection, *, function: FunctionRecord, trigger_id: str) -> None:
    _find(conn, function, trigger_id)
    conn.execute(delete(function_triggers).where(function_triggers.c.trigger_id == trigger_id))
    conn.execute(delete(consumer_cursors).where(consumer_cursors.c.name == cursor_name(trigger_id)))


def forget_cursors(conn: Connection, function: FunctionRecord) -> None:
    """The cursors of a function's LTS triggers, when all its triggers go."""
    names = [cursor_name(r.trigger_id) for r in _rows(conn, function)]
    if names:
        conn.execute(delete(consumer_cursors).where(consumer_cursors.c.name.in_(names)))


# -- handing batches over -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Active:
    """An active LTS trigger, as the feeder needs it."""

    trigger_id: str
    project_id: str
    func_id: str
    domain_id: str
    data: LtsEventData


def active(conn: Connection) -> list[Active]:
    stmt = (
        select(
            function_triggers.c.trigger_id,
            function_triggers.c.project_id,
            function_triggers.c.func_id,
            function_triggers.c.event_data,
            projects.c.domain_id,
        )
        .join(functions, functions.c.func_id == function_triggers.c.func_id)
        .join(projects, projects.c.id == function_triggers.c.project_id)
        .where(function_triggers.c.trigger_type_code == TYPE, function_triggers.c.status == "ACTIVE")
    )
    return [
        Active(r.trigger_id, r.project_id, r.func_id, r.domain_id, LtsEventData(**orjson.loads(r.event_data)))
        for r in conn.execute(stmt)
    ]


def _trace(record: Any) -> dict[str, Any]:
    try:
        trace = orjson.loads(record.content)
    except orjson.JSONDecodeError:
        return {}
    return trace if isinstance(trace, dict) else {}


def made_by(trace: dict[str, Any], func_id: str) -> bool:
    """Whether ``trace`` records a call the function made itself, through its agency's credentials.

    Such traces are never handed to that function: a handler that alarms through SMN on what it reads
    (the seeds' LTS function, on the management stream) would read its own publish, whose recorded body
    holds the alarm, and alarm again, without end. ``api.audit`` writes such a call's user as
    ``AssumedAgency`` with the function's id.
    """
    user = trace.get("user")
    return isinstance(user, dict) and user.get("type") == "AssumedAgency" and user.get("id") == func_id


def _log(record: Any, path: str, trace: dict[str, Any] | None = None) -> dict[str, Any]:
    if trace is None:
        trace = _trace(record)
    ip = trace.get("source_ip")
    return {
        "message": record.content,
        "time": int(record.time),
        "host_name": HOST_NAME,
        "ip": ip if isinstance(ip, str) else "",
        "path": path,
        "log_uid": str(record.id),
        "line_no": int(record.id),
    }


def lts_event(trigger: Active, records: list[Any], path: str) -> bytes | None:
    """The event an LTS-triggered function receives for ``records``; None when every one of them records
    the function's own calls (:func:`made_by`), which it is not handed."""
    logs = []
    for record in records:
        trace = _trace(record)
        if not made_by(trace, trigger.func_id):
            logs.append(_log(record, path, trace))
    if not logs:
        return None
    data = {
        "logs": logs,
        "owner": trigger.domain_id,
        "log_group_id": trigger.data.log_group_id,
        "log_topic_id": trigger.data.log_topic_id,
    }
    return orjson.dumps({"lts": {"data": base64.b64encode(orjson.dumps(data)).decode()}})


def hand_over(conn: Connection, trigger: Active, *, now: int) -> int:
    """Queue the next batch of the trigger's stream as one invocation; returns the records in it.

    The cursor moves by compare-and-set in the same transaction, so of two nodes handing over the same
    batch one queues it and the other queues nothing.
    """
    name = cursor_name(trigger.trigger_id)
    insert_ignore(conn, consumer_cursors, {"name": name, "position": 0, "updated_at": now}, key=["name"])
    position = int(
        conn.execute(select(consumer_cursors.c.position).where(consumer_cursors.c.name == name)).scalar_one()
    )
    r = lts_records.c
    found = conn.execute(
        select(r.id, r.time, r.content)
        .where(r.stream_id == trigger.data.log_topic_id, r.id > position)
        .order_by(r.id)
        .limit(trigger.data.batch_size)
    ).all()
    if not found:
        return 0
    moved = conn.execute(
        update(consumer_cursors)
        .where(consumer_cursors.c.name == name, consumer_cursors.c.position == position)
        .values(position=int(found[-1].id), updated_at=now)
        .returning(consumer_cursors.c.name)
    ).first()
    if moved is None:
        return 0  # another node handed this batch over
    stream = conn.execute(
        select(lts_streams.c.name).where(lts_streams.c.id == trigger.data.log_topic_id)
    ).scalar()
    event = lts_event(trigger, list(found), str(stream or ""))
    if event is not None:
        invocations.enqueue(
            conn,
            project_id=trigger.project_id,
            func_id=trigger.func_id,
            source="trigger",
            event=event,
            now=now,
            trigger_id=trigger.trigger_id,
        )
    return len(found)


def _handing(trigger: Active, now: int) -> Callable[[Connection], int]:
    return lambda conn: hand_over(conn, trigger, now=now)


class LtsTriggerFeeder:
    """Looks for due LTS triggers every :data:`TICK_SECONDS` and hands each its stream's new records."""

    def __init__(
        self, db: Database, *, wake: Callable[[], None], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.db = db
        self.wake = wake
        self._clock = clock
        self._due: dict[str, float] = {}

    async def step(self) -> int:
        """Hand every due trigger its next batch; returns the records handed over."""
        found = await self.db.read(active)
        moment, total = self._clock(), 0
        for trigger in found:
            if self._due.get(trigger.trigger_id, 0.0) > moment:
                continue
            handed = await self.db.write(_handing(trigger, now_ms()))
            total += handed
            # a full batch: more may wait, so look again at once; otherwise after the trigger's interval
            full = handed == trigger.data.batch_size
            self._due[trigger.trigger_id] = moment if full else moment + trigger.data.polling_interval
        if total:
            self.wake()
        return total

    async def run_forever(self) -> None:
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("LTS triggers: handing over failed; retrying in %.1fs", TICK_SECONDS)
            await asyncio.sleep(TICK_SECONDS)
