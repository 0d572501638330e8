"""Notifications in the database, and the notification object as CTS returns it (§2.4).

Every function takes a ``Connection`` and runs inside the caller's transaction, so a route does one
``db.write`` and gets all-or-nothing (a batch delete naming one unknown id deletes nothing). The
``config`` column holds the operations, users, filter and agency as validated, so a notification
round-trips exactly.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import Connection, Row, delete, func, insert, select
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError

from opencts.clock import now_ms
from opencts.errors import BadRequest, Conflict, NotFound, QuotaExceeded
from opencts.iam.projects import lock_project
from opencts.notifications.matcher import Notification
from opencts.notifications.model import (
    MAX_FUN_NOTIFICATIONS,
    MAX_NOTIFICATIONS,
    CreateNotificationRequestBody,
    TopicRef,
    UpdateNotificationRequestBody,
)
from opencts.store.tables import function_triggers, notification_alarms, notifications, smn_topics
from opencts.store.upsert import insert_ignore

NOTIFICATION_TYPES = ("smn", "fun")
#: a batch delete names at most this many ids (a project has at most 100 notifications)
MAX_DELETE_IDS = MAX_NOTIFICATIONS


def count(conn: Connection, project_id: str) -> int:
    """How many notifications the project has (ListQuotas ``smn_notification``)."""
    stmt = select(func.count()).select_from(notifications).where(notifications.c.project_id == project_id)
    return int(conn.execute(stmt).scalar_one())


def _check_topic(conn: Connection, project_id: str, topic_id: str, ref: TopicRef) -> None:
    """A topic_id must name something of the caller's project; an SMN topic must exist now."""
    if ref.project_id != project_id:
        raise BadRequest(
            f"topic_id {topic_id} belongs to project {ref.project_id}; a notification of project"
            f" {project_id} can only use that project's topics and functions"
        )
    if ref.kind == "smn":
        # FOR SHARE (PostgreSQL): a DeleteTopic running now waits for this commit and then sees the
        # notification, so it refuses instead of leaving the notification pointing at nothing
        found = conn.execute(
            select(smn_topics.c.topic_urn)
            .where(smn_topics.c.topic_urn == topic_id, smn_topics.c.project_id == project_id)
            .with_for_update(read=True)
        ).first()
        if found is None:
            raise BadRequest(
                f"topic_id {topic_id}: there is no SMN topic with this URN in project {project_id};"
                f" create it first (POST /v2/{project_id}/notifications/topics)"
            )


def _check_fun_quota(conn: Connection, project_id: str, *, other_than: str | None = None) -> None:
    """A fun notification is a CTS trigger (``functions.triggers``): at most 10 per project."""
    stmt = (
        select(func.count())
        .select_from(notifications)
        .where(notifications.c.project_id == project_id, notifications.c.notification_type == "fun")
    )
    if other_than is not None:
        stmt = stmt.where(notifications.c.notification_id != other_than)
    used = int(conn.execute(stmt).scalar_one())
    if used >= MAX_FUN_NOTIFICATIONS:
        raise QuotaExceeded(
            f"a project may have at most {MAX_FUN_NOTIFICATIONS} notifications of type fun (CTS triggers of"
            f" functions) and has {used}; delete one to create another"
        )


def _name_taken(conn: Connection, project_id: str, name: str, *, other_than: str | None = None) -> bool:
    stmt = select(notifications.c.notification_id).where(
        notifications.c.project_id == project_id, notifications.c.name == name
    )
    if other_than is not None:
        stmt = stmt.where(notifications.c.notification_id != other_than)
    return conn.execute(stmt).first() is not None


def _row(conn: Connection, project_id: str, notification_id: str) -> Row[Any] | None:
    return conn.execute(
        select(notifications).where(
            notifications.c.project_id == project_id, notifications.c.notification_id == notification_id
        )
    ).first()


def create(conn: Connection, *, project_id: str, body: CreateNotificationRequestBody) -> dict[str, Any]:
    """CreateNotification. Duplicate name: 409; the 101st notification: 400 (quota)."""
    lock_project(conn, project_id)
    if _name_taken(conn, project_id, body.notification_name):
        raise Conflict(f"notification {body.notification_name!r} already exists in project {project_id}")
    used = count(conn, project_id)
    if used >= MAX_NOTIFICATIONS:
        raise QuotaExceeded(
            f"a project may have at most {MAX_NOTIFICATIONS} key-event notifications and has {used};"
            " delete one to create another"
        )
    ref = body.topic
    if ref is not None and body.topic_id is not None:
        _check_topic(conn, project_id, body.topic_id, ref)
        if ref.kind == "fun":
            _check_fun_quota(conn, project_id)
    notification_id = str(uuid.uuid4())
    now = now_ms()
    try:
        with conn.begin_nested():
            conn.execute(
                insert(notifications).values(
                    notification_id=notification_id,
                    project_id=project_id,
                    name=body.notification_name,
                    operation_type=body.operation_type,
                    status=body.status,
                    notification_type=ref.kind if ref is not None else "smn",
                    topic_id=body.topic_id,
                    config=orjson.dumps(body.config()).decode(),
                    create_time=now,
                    update_time=now,
                )
            )
    except IntegrityError:
        raise Conflict(
            f"notification {body.notification_name!r} already exists in project {project_id}"
        ) from None
    row = _row(conn, project_id, notification_id)
    assert row is not None
    return render(row)


def update(conn: Connection, *, project_id: str, body: UpdateNotificationRequestBody) -> dict[str, Any]:
    """UpdateNotification: the body replaces the configuration (a disabled update may keep the topic)."""
    row = _row(conn, project_id, body.notification_id)
    if row is None:
        raise NotFound(f"notification {body.notification_id} does not exist in project {project_id}")
    if _name_taken(conn, project_id, body.notification_name, other_than=row.notification_id):
        raise Conflict(f"notification {body.notification_name!r} already exists in project {project_id}")
    topic_id, kind = row.topic_id, row.notification_type
    ref = body.topic
    if ref is not None and body.topic_id is not None:
        _check_topic(conn, project_id, body.topic_id, ref)
        if ref.kind == "fun" and kind != "fun":
            lock_project(conn, project_id)
            _check_fun_quota(conn, project_id, other_than=row.notification_id)
        topic_id, kind = body.topic_id, ref.kind
    try:
        with conn.begin_nested():
            conn.execute(
                sql_update(notifications)
                .where(notifications.c.notification_id == row.notification_id)
                .values(
                    name=body.notification_name,
                    operation_type=body.operation_type,
                    status=body.status,
                    notification_type=kind,
                    topic_id=topic_id,
                    config=orjson.dumps(body.config()).decode(),
                    # strictly increasing, so another process's cache sees even two changes in one ms
                    update_time=max(now_ms(), int(row.update_time) + 1),
                )
            )
    except IntegrityError:
        raise Conflict(
            f"notification {body.notification_name!r} already exists in project {project_id}"
        ) from None
    new = _row(conn, project_id, row.notification_id)
    assert new is not None
    return render(new)


def parse_ids(raw: str | None) -> list[str]:
    """``notification_id`` of DeleteNotification: one id or several separated by commas."""
    ids = list(dict.fromkeys(p.strip() for p in (raw or "").split(",") if p.strip()))
    if not ids:
        raise BadRequest("notification_id is required: one id, or several separated by commas")
    if len(ids) > MAX_DELETE_IDS:
        raise BadRequest(f"notification_id names at most {MAX_DELETE_IDS} notifications, not {len(ids)}")
    return ids


def delete_many(conn: Connection, *, project_id: str, ids: list[str]) -> list[str]:
    """Delete every named notification, or (if any is unknown) none of them: 404 naming the missing."""
    found = set(
        conn.execute(
            select(notifications.c.notification_id).where(
                notifications.c.project_id == project_id, notifications.c.notification_id.in_(ids)
            )
        ).scalars()
    )
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(
            f"notification(s) {', '.join(missing)} do not exist in project {project_id}; nothing was deleted"
        )
    conn.execute(delete(notifications).where(notifications.c.notification_id.in_(ids)))
    conn.execute(delete(notification_alarms).where(notification_alarms.c.notification_id.in_(ids)))
    # a fun notification may be a function's CTS trigger (functions.triggers): its link row goes with it
    conn.execute(delete(function_triggers).where(function_triggers.c.notification_id.in_(ids)))
    return ids


def list_notifications(
    conn: Connection, *, project_id: str, notification_type: str, notification_name: str | None = None
) -> list[dict[str, Any]]:
    """ListNotifications of one type (``smn`` or ``fun``), optionally one by name; oldest first."""
    if notification_type not in NOTIFICATION_TYPES:
        raise BadRequest(f"notification_type must be smn or fun, not {notification_type[:40]!r}")
    stmt = select(notifications).where(
        notifications.c.project_id == project_id, notifications.c.notification_type == notification_type
    )
    if notification_name is not None:
        stmt = stmt.where(notifications.c.name == notification_name)
    rows = conn.execute(stmt.order_by(notifications.c.create_time, notifications.c.name))
    return [render(r) for r in rows]


def fingerprint(conn: Connection, project_id: str) -> tuple[tuple[str, int], ...]:
    """Every notification's (id, update_time): it changes whenever one is created, changed or deleted."""
    rows = conn.execute(
        select(notifications.c.notification_id, notifications.c.update_time)
        .where(notifications.c.project_id == project_id)
        .order_by(notifications.c.notification_id)
    )
    return tuple((r.notification_id, int(r.update_time)) for r in rows)


def load_enabled(conn: Connection, project_id: str) -> list[Notification]:
    """What the matcher compiles: enabled notifications that have somewhere to send their alarms."""
    rows = conn.execute(
        select(notifications)
        .where(
            notifications.c.project_id == project_id,
            notifications.c.status == "enabled",
            notifications.c.topic_id.is_not(None),
        )
        .order_by(notifications.c.create_time, notifications.c.notification_id)
    )
    return [
        Notification.from_config(
            notification_id=r.notification_id,
            project_id=r.project_id,
            name=r.name,
            notification_type=r.notification_type,
            topic_id=r.topic_id,
            operation_type=r.operation_type,
            config=orjson.loads(r.config),
        )
        for r in rows
    ]


def render(row: Row[Any]) -> dict[str, Any]:
    """The notification object of Create/UpdateNotification and of ListNotifications' items."""
    config: dict[str, Any] = orjson.loads(row.config)
    return {
        "notification_id": row.notification_id,
        "notification_name": row.name,
        "operation_type": row.operation_type,
        "operations": config.get("operations") or [],
        "notify_user_list": config.get("notify_user_list") or [],
        "agency_name": config.get("agency_name"),
        "status": row.status,
        "topic_id": row.topic_id,
        "notification_type": row.notification_type,
        "project_id": row.project_id,
        "create_time": int(row.create_time),
        "filter": config.get("filter"),
    }


def claim_alarm(conn: Connection, notification: Notification, trace_id: str, outcome: str, now: int) -> bool:
    """Record that ``notification`` alarmed for ``trace_id``; False if that was recorded before.

    The record is the at-most-once guard of the notifier: whoever inserts it (this process or another on
    the same PostgreSQL) is the one that publishes.
    """
    return insert_ignore(
        conn,
        notification_alarms,
        {
            "notification_id": notification.notification_id,
            "trace_id": trace_id,
            "project_id": notification.project_id,
            "outcome": outcome,
            "created_at": now,
        },
        key=["notification_id", "trace_id"],
    )


def settle_alarm(
    conn: Connection,
    notification_id: str,
    trace_id: str,
    *,
    outcome: str | None = None,
    message_id: str | None = None,
) -> None:
    """Write what became of a claimed alarm: a different outcome, or the SMN message it published."""
    values: dict[str, Any] = {}
    if outcome is not None:
        values["outcome"] = outcome
    if message_id is not None:
        values["message_id"] = message_id
    conn.execute(
        sql_update(notification_alarms)
        .where(
            notification_alarms.c.notification_id == notification_id,
            notification_alarms.c.trace_id == trace_id,
        )
        .values(values)
    )


def prune_alarms(conn: Connection, before: int) -> None:
    """Forget alarm records created before ``before`` (ms): their traces have left the log by then."""
    conn.execute(delete(notification_alarms).where(notification_alarms.c.created_at < before))


def alarm_counts(conn: Connection, notification_ids: list[str]) -> dict[str, tuple[int, int]]:
    """Each notification's alarms still on record (they are pruned with their traces) and the newest's time
    (ms), so the console can show that a notification fires; notifications without one are left out."""
    if not notification_ids:
        return {}
    rows = conn.execute(
        select(
            notification_alarms.c.notification_id,
            func.count(),
            func.max(notification_alarms.c.created_at),
        )
        .where(notification_alarms.c.notification_id.in_(notification_ids))
        .group_by(notification_alarms.c.notification_id)
    )
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}
