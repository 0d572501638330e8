"""Subscriptions: add (unconfirmed, with a confirmation queued), list, cancel, confirm, unsubscribe.

A subscription receives nothing until its endpoint proves it wants the messages, as in SMN: the first
thing queued for it is a confirmation carrying a link (``subscribe_url`` for HTTP, a URL in the text for
email and SMS). Clicking it moves the subscription from ``UNCONFIRMED`` to ``CONFIRMED``; only confirmed
subscriptions get published messages.

Custom HTTP headers of a subscription (``extension.header``) often carry a receiver's credentials (an
``Authorization`` token), so they are stored sealed under the master key (``header_sealed``, with the
subscription URN as associated data) and opened only to send.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Literal

import orjson
from sqlalchemy import ColumnElement, Connection, delete, func, select, update

from opencts.clock import HOUR_MS
from opencts.errors import NotFound, QuotaExceeded
from opencts.iam.secrets import SecretBox, is_sealed
from opencts.smn import topics
from opencts.smn.errors import SUBSCRIPTION_NOT_FOUND
from opencts.smn.model import NewSubscription
from opencts.smn.signing import Signer, token_hash
from opencts.smn.statuses import CANCELLED, CONFIRMED, PENDING, UNCONFIRMED
from opencts.store.tables import smn_deliveries, smn_messages, smn_subscriptions

#: SMN's per-topic subscription quota
MAX_PER_TOPIC = 10_000
#: how long a confirmation keeps being retried (SMN's links are valid for 48 hours)
CONFIRMATION_TTL_MS = 48 * HOUR_MS


def render(row: Any) -> dict[str, Any]:
    extension = orjson.loads(row.extension) if row.extension else {}
    return {
        "topic_urn": row.topic_urn,
        "protocol": row.protocol,
        "subscription_urn": row.subscription_urn,
        "owner": row.project_id,
        "endpoint": row.endpoint,
        "remark": row.remark,
        "status": int(row.status),
        "filter_polices": [],
        # custom headers may carry a webhook's credentials: they are used, never echoed back
        "extension": {"verification_code_enabled": bool(extension.get("verification_code_enabled", False))},
    }


def queue_confirmation(conn: Connection, row: Any, now: int) -> str:
    """Queue the confirmation message for one subscription; the outbox renders its link when it sends."""
    message_id = uuid.uuid4().hex
    expires = now + CONFIRMATION_TTL_MS
    conn.execute(
        smn_messages.insert().values(
            message_id=message_id,
            topic_urn=row.topic_urn,
            project_id=row.project_id,
            kind="confirmation",
            subject=None,
            message=None,
            message_structure=None,
            expires_at=expires,
            created_at=now,
        )
    )
    conn.execute(
        smn_deliveries.insert().values(
            message_id=message_id,
            subscription_urn=row.subscription_urn,
            project_id=row.project_id,
            protocol=row.protocol,
            endpoint=row.endpoint,
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            expires_at=expires,
            created_at=now,
        )
    )
    return message_id


def _one(conn: Connection, *conds: ColumnElement[bool]) -> Any:
    return conn.execute(select(smn_subscriptions).where(*conds)).first()


def add(
    conn: Connection,
    *,
    project_id: str,
    topic_urn: str,
    items: Sequence[NewSubscription],
    signer: Signer,
    box: SecretBox,
    now: int,
) -> list[str]:
    """Add subscriptions; the same protocol+endpoint on a topic is the same subscription (idempotent).

    An unconfirmed or cancelled one gets a fresh confirmation; a confirmed one is left alone.
    """
    topics.get(conn, project_id, topic_urn)
    urns = []
    for item in items:
        row = _one(
            conn,
            smn_subscriptions.c.topic_urn == topic_urn,
            smn_subscriptions.c.protocol == item.protocol,
            smn_subscriptions.c.endpoint == item.endpoint,
        )
        if row is None:
            count = conn.execute(
                select(func.count())
                .select_from(smn_subscriptions)
                .where(smn_subscriptions.c.topic_urn == topic_urn)
            ).scalar_one()
            if count >= MAX_PER_TOPIC:
                raise QuotaExceeded(f"a topic may have at most {MAX_PER_TOPIC} subscriptions")
            urn = f"{topic_urn}:{uuid.uuid4().hex}"
            extension = item.extension.model_dump(exclude_none=True) if item.extension else {}
            extension = seal_headers(box, urn, extension)
            conn.execute(
                smn_subscriptions.insert().values(
                    subscription_urn=urn,
                    topic_urn=topic_urn,
                    project_id=project_id,
                    protocol=item.protocol,
                    endpoint=item.endpoint,
                    remark=item.remark,
                    status=UNCONFIRMED,
                    token_hash=token_hash(signer.token(urn)),
                    extension=orjson.dumps(extension).decode(),
                    created_at=now,
                )
            )
            row = _one(conn, smn_subscriptions.c.subscription_urn == urn)
        elif row.status != CONFIRMED:
            conn.execute(
                update(smn_subscriptions)
                .where(smn_subscriptions.c.subscription_urn == row.subscription_urn)
                .values(status=UNCONFIRMED, remark=item.remark or row.remark)
            )
        if row.status != CONFIRMED:
            queue_confirmation(conn, row, now)
        urns.append(row.subscription_urn)
    return urns


def _header_context(subscription_urn: str) -> str:
    return f"smn_subscriptions:{subscription_urn}"


def seal_headers(box: SecretBox, subscription_urn: str, extension: dict[str, Any]) -> dict[str, Any]:
    """``extension`` with its custom headers (if any) replaced by their sealed form."""
    header = extension.get("header")
    if not header:
        return extension
    rest = {k: v for k, v in extension.items() if k != "header"}
    sealed = box.seal(orjson.dumps(header), context=_header_context(subscription_urn))
    return {**rest, "header_sealed": sealed}


def open_headers(box: SecretBox, subscription_urn: str, extension: dict[str, Any]) -> dict[str, str]:
    """The custom headers to send; raises ``SealedValueError`` if they do not open."""
    sealed = extension.get("header_sealed")
    if isinstance(sealed, str) and is_sealed(sealed):
        opened = orjson.loads(box.open(sealed, context=_header_context(subscription_urn)))
        return {str(k): str(v) for k, v in opened.items()}
    return {str(k): str(v) for k, v in (extension.get("header") or {}).items()}


def seal_plain_headers(conn: Connection, box: SecretBox) -> int:
    """Seal the custom headers of subscriptions stored in plain text; returns how many there were."""
    rows = conn.execute(
        select(smn_subscriptions.c.subscription_urn, smn_subscriptions.c.extension).where(
            smn_subscriptions.c.extension.contains('"header":', autoescape=True)
        )
    ).all()
    count = 0
    for row in rows:
        extension = orjson.loads(row.extension)
        if not extension.get("header"):
            continue
        sealed = seal_headers(box, row.subscription_urn, extension)
        conn.execute(
            update(smn_subscriptions)
            .where(smn_subscriptions.c.subscription_urn == row.subscription_urn)
            .values(extension=orjson.dumps(sealed).decode())
        )
        count += 1
    return count


def list_subscriptions(
    conn: Connection,
    project_id: str,
    *,
    offset: int,
    limit: int,
    topic_urn: str | None = None,
    protocol: str | None = None,
    status: int | None = None,
    endpoint: str | None = None,
    fuzzy_remark: str | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    conds: list[ColumnElement[bool]] = [smn_subscriptions.c.project_id == project_id]
    if topic_urn is not None:
        topics.get(conn, project_id, topic_urn)
        conds.append(smn_subscriptions.c.topic_urn == topic_urn)
    if protocol:
        conds.append(smn_subscriptions.c.protocol == protocol)
    if status is not None:
        conds.append(smn_subscriptions.c.status == status)
    if endpoint:
        conds.append(smn_subscriptions.c.endpoint == endpoint)
    if fuzzy_remark:
        conds.append(smn_subscriptions.c.remark.contains(fuzzy_remark, autoescape=True))
    total = conn.execute(select(func.count()).select_from(smn_subscriptions).where(*conds)).scalar_one()
    rows = conn.execute(
        select(smn_subscriptions)
        .where(*conds)
        .order_by(smn_subscriptions.c.created_at.desc(), smn_subscriptions.c.subscription_urn)
        .offset(offset)
        .limit(limit)
    )
    return int(total), [render(r) for r in rows]


def cancel(conn: Connection, project_id: str, subscription_urn: str) -> None:
    """Delete a subscription and whatever was still queued for it."""
    row = _one(
        conn,
        smn_subscriptions.c.subscription_urn == subscription_urn,
        smn_subscriptions.c.project_id == project_id,
    )
    if row is None:
        raise NotFound(f"subscription {subscription_urn} does not exist", code=SUBSCRIPTION_NOT_FOUND)
    conn.execute(delete(smn_deliveries).where(smn_deliveries.c.subscription_urn == subscription_urn))
    conn.execute(delete(smn_subscriptions).where(smn_subscriptions.c.subscription_urn == subscription_urn))


Outcome = Literal["confirmed", "already_confirmed", "cancelled", "unsubscribed", "already_unsubscribed"]


def by_token(conn: Connection, token: str) -> Any:
    row = _one(conn, smn_subscriptions.c.token_hash == token_hash(token)) if token else None
    if row is None:
        raise NotFound(
            "the link is not valid: no subscription has this token (was it deleted?)",
            code=SUBSCRIPTION_NOT_FOUND,
        )
    return row


def confirm(conn: Connection, token: str) -> tuple[Outcome, Any]:
    """Idempotent: a second click says "already confirmed"; a cancelled subscription stays cancelled."""
    row = by_token(conn, token)
    if row.status == CONFIRMED:
        return "already_confirmed", row
    if row.status == CANCELLED:
        return "cancelled", row
    conn.execute(
        update(smn_subscriptions)
        .where(smn_subscriptions.c.subscription_urn == row.subscription_urn)
        .values(status=CONFIRMED)
    )
    return "confirmed", row


def unsubscribe(conn: Connection, token: str) -> tuple[Outcome, Any]:
    """The link in every delivery: status 3, kept in the list (as SMN shows cancelled subscriptions)."""
    row = by_token(conn, token)
    if row.status == CANCELLED:
        return "already_unsubscribed", row
    conn.execute(
        update(smn_subscriptions)
        .where(smn_subscriptions.c.subscription_urn == row.subscription_urn)
        .values(status=CANCELLED)
    )
    return "unsubscribed", row
