"""Function triggers (FunctionGraph v2 ``/fgs/triggers``): CTS triggers, which are key event notifications.

A CTS trigger IS a key event notification of type ``fun`` whose ``topic_id`` is the function's URN, so the
notifier's one matcher decides which traces reach a function (issue 11, item 2). **The notification is the
source of truth**: a trigger's id is its notification's id, its status is the notification's
(``ACTIVE`` = ``enabled``), its ``event_data`` is the notification's name and operations, and its times
are the notification's. So a ``fun`` notification made through the CTS API is a CTS trigger of that
function too, and a change through either API shows in both. The ``function_triggers`` row that a trigger
made here gets (in the same transaction as its notification) records the link and the body as sent; it
goes with the trigger, and a function's deletion takes its triggers' notifications with it
(:func:`delete_for_function`).

Limits: at most :data:`MAX_CTS_TRIGGERS` CTS triggers (``fun`` notifications) per project, each with
at most :data:`MAX_SERVICES` services and :data:`MAX_OPERATIONS` operations, within the CTS notification
limits of :mod:`opencts.notifications.model` (100 notifications per project, the name rule).
LTS triggers (batches of a log stream's new records) are :mod:`opencts.functions.lts_triggers`; the
functions here hand them over by ``trigger_type_code``. Other trigger types are refused with a message
naming the supported ones.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator
from sqlalchemy import Connection, Row, delete, func, insert, select, update

from opencts.clock import iso_ms
from opencts.errors import BadRequest, NotFound, QuotaExceeded
from opencts.functions import lts_triggers
from opencts.functions.repository import FunctionRecord, parse_urn
from opencts.iam.projects import lock_project
from opencts.notifications import repository as notifications_repository
from opencts.notifications.model import (
    MAX_FUN_NOTIFICATIONS,
    CreateNotificationRequestBody,
    NotificationName,
    Operation,
    UpdateNotificationRequestBody,
)
from opencts.store.tables import function_triggers, notifications
from opencts.validation import describe

SUPPORTED_TYPES = ("CTS", "LTS")
MAX_CTS_TRIGGERS = MAX_FUN_NOTIFICATIONS
MAX_SERVICES = 10
MAX_OPERATIONS = 100
#: trigger status ↔ notification status
_TO_NOTIFICATION: dict[str, Literal["enabled", "disabled"]] = {"ACTIVE": "enabled", "DISABLED": "disabled"}
_TO_TRIGGER = {v: k for k, v in _TO_NOTIFICATION.items()}

TriggerStatus = Literal["ACTIVE", "DISABLED"]


def check_type(trigger_type_code: str) -> None:
    if trigger_type_code not in SUPPORTED_TYPES:
        raise BadRequest(
            f"trigger_type_code {trigger_type_code[:40]!r} is not supported: OpenCTS implements CTS triggers"
            " (key event notifications that invoke the function) and LTS triggers (batches of a log"
            " stream's records)"
        )


def split_operation(text: str) -> tuple[str, str, str]:
    """``"IAM:user:login"`` → ``("IAM", "user", "login")``; a resource type may itself hold colons."""
    service, sep, rest = text.partition(":")
    resource, sep2, trace_name = rest.rpartition(":")
    if not (sep and sep2 and service and resource and trace_name):
        raise ValueError(f"operation {text[:120]!r} must read ServiceType:ResourceType:TraceName")
    try:
        Operation(service_type=service, resource_type=resource, trace_names=[trace_name])
    except ValidationError as exc:
        raise ValueError(f"operation {text[:120]!r}: {describe(exc)}") from None
    return service, resource, trace_name


class CtsEventData(BaseModel):
    """A CTS trigger's ``event_data``: the notification's name and the operations that invoke."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    name: NotificationName
    operations: list[Annotated[str, StringConstraints(max_length=512)]] = Field(min_length=1)

    @field_validator("operations")
    @classmethod
    def _operations(cls, value: list[str]) -> list[str]:
        triples = list(dict.fromkeys(split_operation(op) for op in value))
        if len(triples) > MAX_OPERATIONS:
            raise ValueError(f"a CTS trigger holds at most {MAX_OPERATIONS} operations, not {len(triples)}")
        services = {s for s, _, _ in triples}
        if len(services) > MAX_SERVICES:
            raise ValueError(f"a CTS trigger covers at most {MAX_SERVICES} services, not {len(services)}")
        return [":".join(t) for t in triples]

    def operations_body(self) -> list[dict[str, Any]]:
        """The CTS notification's ``operations``: trace names grouped by (service, resource type)."""
        grouped: dict[tuple[str, str], list[str]] = {}
        for op in self.operations:
            service, resource, name = split_operation(op)
            grouped.setdefault((service, resource), []).append(name)
        return [{"service_type": s, "resource_type": r, "trace_names": n} for (s, r), n in grouped.items()]


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class CreateTriggerBody(_Body):
    """``CreateFunctionTriggerRequestBody``; ``event_data`` is checked for the trigger type given."""

    trigger_type_code: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    trigger_status: TriggerStatus = "ACTIVE"
    event_type_code: Annotated[str, StringConstraints(max_length=64)] | None = None
    event_data: dict[str, Any]


class UpdateTriggerBody(_Body):
    """``UpdateTriggerRequestBody``: a new status, and for CTS triggers new ``name``/``operations``.

    The SDK's model types ``event_data`` as a list of queue settings (``is_serial``, ``polling_interval``,
    …), which no CTS trigger has: a list of empty objects means no change, anything in it is refused.
    """

    trigger_status: TriggerStatus | None = None
    event_data: dict[str, Any] | list[dict[str, Any]] | None = None

    def cts_event_data(self) -> dict[str, Any] | None:
        data = self.event_data
        if not isinstance(data, list):
            return data
        named = sorted({key for item in data for key, value in item.items() if value is not None})
        if named:
            raise BadRequest(
                f"event_data: {', '.join(named)} do not apply to CTS triggers; a CTS trigger's event_data is"
                " {name, operations}"
            )
        return None


def parse_event_data(data: dict[str, Any]) -> CtsEventData:
    try:
        return CtsEventData.model_validate(data)
    except ValidationError as exc:
        raise BadRequest("event_data." + describe(exc)) from None


def _base_urn(topic_id: str | None) -> str | None:
    """The URN without its version or alias; None for what is not a function URN."""
    if not topic_id:
        return None
    try:
        u = parse_urn(topic_id)
    except BadRequest:
        return None
    return f"urn:fss:{u.region}:{u.project_id}:function:{u.package}:{u.name}"


def _fun_rows(conn: Connection, project_id: str) -> list[Row[Any]]:
    stmt = select(notifications).where(
        notifications.c.project_id == project_id, notifications.c.notification_type == "fun"
    )
    return list(conn.execute(stmt.order_by(notifications.c.create_time, notifications.c.notification_id)))


def _rows_of(conn: Connection, function: FunctionRecord) -> list[Row[Any]]:
    return [r for r in _fun_rows(conn, function.project_id) if _base_urn(r.topic_id) == function.func_urn]


def render(row: Row[Any]) -> dict[str, Any]:
    """The trigger object (``CreateFunctionTriggerResponse``, items of the list) of a ``fun`` notification."""
    config: dict[str, Any] = orjson.loads(row.config)
    operations = [
        f"{o['service_type']}:{o['resource_type']}:{name}"
        for o in config.get("operations") or ()
        for name in o["trace_names"]
    ]
    return {
        "trigger_id": row.notification_id,
        "trigger_type_code": "CTS",
        "trigger_status": _TO_TRIGGER.get(row.status, "DISABLED"),
        "event_data": {"name": row.name, "operations": operations},
        "last_updated_time": iso_ms(int(row.update_time)),
        "created_time": iso_ms(int(row.create_time)),
    }


def _find(conn: Connection, function: FunctionRecord, trigger_type_code: str, trigger_id: str) -> Row[Any]:
    check_type(trigger_type_code)
    for row in _rows_of(conn, function):
        if row.notification_id == trigger_id:
            return row
    raise NotFound(f"function {function.func_urn} has no {trigger_type_code} trigger {trigger_id}")


def create(
    conn: Connection, *, function: FunctionRecord, body: CreateTriggerBody, now: int
) -> dict[str, Any]:
    """CreateFunctionTrigger: the notification and the ``function_triggers`` row, in one transaction."""
    check_type(body.trigger_type_code)
    if body.trigger_type_code == lts_triggers.TYPE:
        return lts_triggers.create(
            conn, function=function, status=body.trigger_status, event_data=body.event_data, now=now
        )
    data = parse_event_data(body.event_data)
    project_id = function.project_id
    lock_project(conn, project_id)  # two concurrent creates cannot both pass the count
    used = count(conn, project_id)
    if used >= MAX_CTS_TRIGGERS:
        raise QuotaExceeded(
            f"a project may have at most {MAX_CTS_TRIGGERS} CTS triggers (key event notifications of type"
            f" fun) and has {used}; delete one to create another"
        )
    notification = CreateNotificationRequestBody(
        notification_name=data.name,
        operation_type="customized",
        operations=[Operation.model_validate(o) for o in data.operations_body()],
        topic_id=function.func_urn,
        status=_TO_NOTIFICATION[body.trigger_status],
    )
    made = notifications_repository.create(conn, project_id=project_id, body=notification)
    trigger_id = str(made["notification_id"])
    conn.execute(
        insert(function_triggers).values(
            trigger_id=trigger_id,
            project_id=project_id,
            func_id=function.func_id,
            trigger_type_code=body.trigger_type_code,
            status=body.trigger_status,
            event_type_code=body.event_type_code,
            event_data=orjson.dumps(body.event_data).decode(),
            notification_id=trigger_id,
            created_at=now,
            updated_at=now,
        )
    )
    return show(conn, function=function, trigger_type_code=body.trigger_type_code, trigger_id=trigger_id)


def list_triggers(conn: Connection, *, function: FunctionRecord) -> list[dict[str, Any]]:
    """ListFunctionTriggers: every CTS trigger of the function, oldest first, then its LTS triggers."""
    return [render(r) for r in _rows_of(conn, function)] + lts_triggers.list_triggers(conn, function=function)


def show(
    conn: Connection, *, function: FunctionRecord, trigger_type_code: str, trigger_id: str
) -> dict[str, Any]:
    if trigger_type_code == lts_triggers.TYPE:
        return lts_triggers.show(conn, function=function, trigger_id=trigger_id)
    return render(_find(conn, function, trigger_type_code, trigger_id))


def update_trigger(
    conn: Connection,
    *,
    function: FunctionRecord,
    trigger_type_code: str,
    trigger_id: str,
    body: UpdateTriggerBody,
    now: int,
) -> dict[str, Any]:
    """UpdateTrigger: a new status and/or new ``event_data`` (name, operations); the rest is kept."""
    if trigger_type_code == lts_triggers.TYPE:
        return lts_triggers.update_trigger(
            conn,
            function=function,
            trigger_id=trigger_id,
            status=body.trigger_status,
            event_data=body.event_data,
            now=now,
        )
    row = _find(conn, function, trigger_type_code, trigger_id)
    config: dict[str, Any] = orjson.loads(row.config)
    status = _TO_NOTIFICATION[body.trigger_status] if body.trigger_status else row.status
    name, operations = row.name, config.get("operations") or []
    changes = body.cts_event_data()
    if changes is not None:
        current = render(row)["event_data"]
        data = parse_event_data({**current, **changes})
        name, operations = data.name, data.operations_body()
    notification = UpdateNotificationRequestBody.model_validate(
        {
            "notification_id": row.notification_id,
            "notification_name": name,
            "operation_type": "customized",
            "operations": operations,
            "notify_user_list": config.get("notify_user_list") or None,
            "filter": config.get("filter"),
            "topic_id": row.topic_id,
            "status": status,
        }
    )
    notifications_repository.update(conn, project_id=function.project_id, body=notification)
    values: dict[str, Any] = {"status": _TO_TRIGGER[status], "updated_at": now}
    if changes is not None:
        values["event_data"] = orjson.dumps(changes).decode()
    conn.execute(update(function_triggers).where(function_triggers.c.trigger_id == trigger_id).values(values))
    return show(conn, function=function, trigger_type_code=trigger_type_code, trigger_id=trigger_id)


def delete_trigger(
    conn: Connection, *, function: FunctionRecord, trigger_type_code: str, trigger_id: str
) -> None:
    if trigger_type_code == lts_triggers.TYPE:
        lts_triggers.delete_trigger(conn, function=function, trigger_id=trigger_id)
        return
    row = _find(conn, function, trigger_type_code, trigger_id)
    _delete(conn, function.project_id, [row.notification_id])


def delete_all(conn: Connection, *, function: FunctionRecord) -> int:
    """BatchDeleteFunctionTriggers: every trigger of the function; how many there were."""
    lts = lts_triggers.list_triggers(conn, function=function)
    ids = [r.notification_id for r in _rows_of(conn, function)]
    _delete(conn, function.project_id, ids)
    lts_triggers.forget_cursors(conn, function)
    conn.execute(delete(function_triggers).where(function_triggers.c.func_id == function.func_id))
    return len(ids) + len(lts)


def delete_for_function(conn: Connection, function: FunctionRecord) -> int:
    """What deleting a function does to its triggers: their notifications go, in the same transaction."""
    return delete_all(conn, function=function)


def _delete(conn: Connection, project_id: str, ids: list[str]) -> None:
    if not ids:
        return
    notifications_repository.delete_many(conn, project_id=project_id, ids=ids)
    conn.execute(delete(function_triggers).where(function_triggers.c.trigger_id.in_(ids)))


def count(conn: Connection, project_id: str) -> int:
    """How many CTS triggers (``fun`` notifications) the project has."""
    stmt = (
        select(func.count())
        .select_from(notifications)
        .where(notifications.c.project_id == project_id, notifications.c.notification_type == "fun")
    )
    return int(conn.execute(stmt).scalar_one())
