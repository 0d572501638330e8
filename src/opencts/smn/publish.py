"""publish_message: the message and one outbox row per confirmed subscriber, in one transaction.

Because both are written together, an acknowledged publish can no longer be lost: whatever happens to
the process afterwards, the outbox still says who has not got it yet.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, select

from opencts.smn import topics
from opencts.smn.model import PublishMessage
from opencts.smn.statuses import CONFIRMED, PENDING
from opencts.store.tables import smn_deliveries, smn_messages, smn_subscriptions


def publish(
    conn: Connection, *, project_id: str, topic_urn: str, body: PublishMessage, now: int
) -> tuple[str, int]:
    """Store the message and queue it; returns ``(message_id, deliveries queued)``."""
    topics.get(conn, project_id, topic_urn)
    message_id = uuid.uuid4().hex
    expires = now + body.ttl_seconds * 1000
    conn.execute(
        smn_messages.insert().values(
            message_id=message_id,
            topic_urn=topic_urn,
            project_id=project_id,
            kind="notification",
            subject=body.subject,
            message=body.message,
            message_structure=body.message_structure,
            expires_at=expires,
            created_at=now,
        )
    )
    subscribers = conn.execute(
        select(
            smn_subscriptions.c.subscription_urn, smn_subscriptions.c.protocol, smn_subscriptions.c.endpoint
        ).where(smn_subscriptions.c.topic_urn == topic_urn, smn_subscriptions.c.status == CONFIRMED)
    ).all()
    if subscribers:
        conn.execute(
            smn_deliveries.insert(),
            [
                {
                    "message_id": message_id,
                    "subscription_urn": s.subscription_urn,
                    "project_id": project_id,
                    "protocol": s.protocol,
                    "endpoint": s.endpoint,
                    "status": PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "expires_at": expires,
                    "created_at": now,
                }
                for s in subscribers
            ],
        )
    return message_id, len(subscribers)
