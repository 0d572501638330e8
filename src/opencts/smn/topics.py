"""Topics: create, list, show, update, delete. Functions take a ``Connection``; handlers pick the lane."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from opencts.clock import iso_ms
from opencts.errors import Conflict, NotFound, QuotaExceeded
from opencts.smn.errors import TOPIC_NOT_FOUND, TopicInUse
from opencts.smn.model import CreateTopic
from opencts.store.tables import notifications, smn_deliveries, smn_messages, smn_subscriptions, smn_topics

#: SMN's per-project topic quota
MAX_TOPICS = 3000


def iso(ms: int) -> str:
    """SMN's time format: ``YYYY-MM-DDTHH:MM:SSZ`` (UTC)."""
    return iso_ms(ms, "seconds")


def make_urn(region: str, project_id: str, name: str) -> str:
    return f"urn:smn:{region}:{project_id}:{name}"


def render(row: Any) -> dict[str, Any]:
    return {
        "topic_urn": row.topic_urn,
        "topic_id": row.topic_id,
        "name": row.name,
        "display_name": row.display_name,
        "push_policy": int(row.push_policy),
        "enterprise_project_id": row.enterprise_project_id,
        "create_time": iso(row.create_time),
        "update_time": iso(row.update_time),
    }


def create(conn: Connection, *, project_id: str, region: str, body: CreateTopic, now: int) -> str:
    urn = make_urn(region, project_id, body.name)
    if conn.execute(select(smn_topics.c.topic_urn).where(smn_topics.c.topic_urn == urn)).first():
        raise Conflict(f"topic {body.name} already exists")
    count = conn.execute(
        select(func.count()).select_from(smn_topics).where(smn_topics.c.project_id == project_id)
    ).scalar_one()
    if count >= MAX_TOPICS:
        raise QuotaExceeded(f"a project may have at most {MAX_TOPICS} topics")
    conn.execute(
        smn_topics.insert().values(
            topic_urn=urn,
            topic_id=uuid.uuid4().hex,
            project_id=project_id,
            name=body.name,
            display_name=body.display_name,
            push_policy=0,
            enterprise_project_id=body.enterprise_project_id,
            create_time=now,
            update_time=now,
        )
    )
    return urn


def get(conn: Connection, project_id: str, topic_urn: str, *, lock: bool = False) -> Any:
    """The topic row, or 404: a URN of another project is as unknown as a made-up one.

    ``lock`` holds the row until commit (PostgreSQL; SQLite has one writer anyway), so a notification
    being pointed at the topic concurrently waits for the delete and then finds no topic.
    """
    stmt = select(smn_topics).where(
        smn_topics.c.topic_urn == topic_urn, smn_topics.c.project_id == project_id
    )
    row = conn.execute(stmt.with_for_update() if lock else stmt).first()
    if row is None:
        raise NotFound(f"topic {topic_urn} does not exist", code=TOPIC_NOT_FOUND)
    return row


def list_topics(
    conn: Connection,
    project_id: str,
    *,
    offset: int,
    limit: int,
    filters: dict[str, str | None],
) -> tuple[int, list[dict[str, Any]]]:
    """``(topic_count, page)``: the count covers every match, ignoring offset and limit (as SMN does)."""
    conds = [smn_topics.c.project_id == project_id]
    exact = {
        "name": smn_topics.c.name,
        "topic_id": smn_topics.c.topic_id,
        "enterprise_project_id": smn_topics.c.enterprise_project_id,
    }
    for key, column in exact.items():
        if filters.get(key):
            conds.append(column == filters[key])
    if filters.get("fuzzy_name"):
        conds.append(smn_topics.c.name.contains(filters["fuzzy_name"], autoescape=True))
    if filters.get("fuzzy_display_name"):
        conds.append(smn_topics.c.display_name.contains(filters["fuzzy_display_name"], autoescape=True))
    total = conn.execute(select(func.count()).select_from(smn_topics).where(*conds)).scalar_one()
    rows = conn.execute(
        select(smn_topics)
        .where(*conds)
        .order_by(smn_topics.c.create_time.desc(), smn_topics.c.topic_urn)
        .offset(offset)
        .limit(limit)
    )
    return int(total), [render(r) for r in rows]


def update_display_name(
    conn: Connection, project_id: str, topic_urn: str, display_name: str, now: int
) -> None:
    get(conn, project_id, topic_urn)
    conn.execute(
        update(smn_topics)
        .where(smn_topics.c.topic_urn == topic_urn)
        .values(display_name=display_name, update_time=now)
    )


def users(conn: Connection, topic_urn: str) -> list[str]:
    """Names of the CTS key event notifications (enabled or not) that publish to ``topic_urn``."""
    rows = conn.execute(
        select(notifications.c.name)
        .where(notifications.c.topic_id == topic_urn)
        .order_by(notifications.c.name)
    )
    return [r.name for r in rows]


def remove(conn: Connection, project_id: str, topic_urn: str) -> None:
    """Delete the topic with its subscriptions, messages and undelivered outbox rows.

    Refused while a CTS key event notification uses the topic: its alarms would otherwise be dropped
    silently from then on. A disabled notification counts, since enabling it again keeps its topic.
    """
    get(conn, project_id, topic_urn, lock=True)
    using = users(conn, topic_urn)
    if using:
        names = ", ".join(using[:10]) + (f" and {len(using) - 10} more" if len(using) > 10 else "")
        raise TopicInUse(
            f"topic {topic_urn} is used by the CTS key event notification(s) {names}; point them at another"
            " topic or delete them first (PUT or DELETE /v3/{project_id}/notifications)"
        )
    messages = select(smn_messages.c.message_id).where(smn_messages.c.topic_urn == topic_urn)
    conn.execute(delete(smn_deliveries).where(smn_deliveries.c.message_id.in_(messages)))
    conn.execute(delete(smn_messages).where(smn_messages.c.topic_urn == topic_urn))
    conn.execute(delete(smn_subscriptions).where(smn_subscriptions.c.topic_urn == topic_urn))
    conn.execute(delete(smn_topics).where(smn_topics.c.topic_urn == topic_urn))
