"""The outbox as the API and CLI see it: list deliveries (dead letters above all) and re-queue dead ones."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select, update

from opencts.errors import Conflict, NotFound
from opencts.smn.statuses import DEAD, PENDING
from opencts.store.tables import smn_deliveries, smn_messages


def render(row: Any) -> dict[str, Any]:
    return {
        "id": int(row.id),
        "message_id": row.message_id,
        "topic_urn": row.topic_urn,
        "subscription_urn": row.subscription_urn,
        "kind": row.kind,
        "protocol": row.protocol,
        "endpoint": row.endpoint,
        "status": row.status,
        "attempts": int(row.attempts),
        "next_attempt_at": int(row.next_attempt_at),
        "expires_at": int(row.expires_at),
        "last_error": row.last_error,
        "created_at": int(row.created_at),
        "delivered_at": int(row.delivered_at) if row.delivered_at is not None else None,
    }


def _select() -> Any:
    d, m = smn_deliveries, smn_messages
    return select(d, m.c.topic_urn, m.c.kind).join(m, m.c.message_id == d.c.message_id)


def list_deliveries(
    conn: Connection,
    project_id: str,
    *,
    status: str | None,
    offset: int,
    limit: int,
    message_id: str | None = None,
    subscription_urn: str | None = None,
    topic_urn: str | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    d, m = smn_deliveries, smn_messages
    conds = [d.c.project_id == project_id]
    if status:
        conds.append(d.c.status == status)
    if message_id:
        conds.append(d.c.message_id == message_id)
    if subscription_urn:
        conds.append(d.c.subscription_urn == subscription_urn)
    source: Any = d
    if topic_urn:
        # a delivery names its message, the message its topic (the console's topic page)
        conds.append(m.c.topic_urn == topic_urn)
        source = d.join(m, m.c.message_id == d.c.message_id)
    total = conn.execute(select(func.count()).select_from(source).where(*conds)).scalar_one()
    rows = conn.execute(_select().where(*conds).order_by(d.c.id.desc()).offset(offset).limit(limit))
    return int(total), [render(r) for r in rows]


def get(conn: Connection, project_id: str, delivery_id: int) -> dict[str, Any]:
    d = smn_deliveries
    row = conn.execute(_select().where(d.c.id == delivery_id, d.c.project_id == project_id)).first()
    if row is None:
        raise NotFound(f"delivery {delivery_id} does not exist")
    return render(row)


def retry(conn: Connection, project_id: str, delivery_id: int, now: int) -> dict[str, Any]:
    """Re-queue a dead delivery now, with a fresh attempt count and a fresh time_to_live."""
    found = get(conn, project_id, delivery_id)
    if found["status"] != DEAD:
        raise Conflict(f"delivery {delivery_id} is {found['status']}; only dead deliveries can be retried")
    ttl = conn.execute(
        select(smn_messages.c.expires_at - smn_messages.c.created_at).where(
            smn_messages.c.message_id == found["message_id"]
        )
    ).scalar_one()
    conn.execute(
        update(smn_deliveries)
        .where(smn_deliveries.c.id == delivery_id, smn_deliveries.c.status == DEAD)
        .values(status=PENDING, attempts=0, next_attempt_at=now, expires_at=now + int(ttl), claim=None)
    )
    return get(conn, project_id, delivery_id)
