"""SMN v2 (``/v2/{project_id}/notifications/...``) as the official SDK calls it, plus ours: the outbox
(``deliveries``: dead letters and retry), the confirmation and unsubscribe links, and the signing certificate.

Every answer carries ``request_id``; counts and ``status`` are real ints (the SDK coerces naively, §5.13).
"""

from __future__ import annotations

import html
from typing import Annotated, Any, Literal, TypeVar

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from opencts.api.auth import require
from opencts.api.bodies import json_body
from opencts.api.deps import Services, ServicesDep
from opencts.api.errors import request_id
from opencts.clock import now_ms
from opencts.errors import BadRequest, OpenCTSError
from opencts.iam.principal import Principal
from opencts.smn import deliveries, subscriptions, topics
from opencts.smn.model import PROTOCOLS, AddSubscription, CreateTopic, PublishMessage, UpdateTopic
from opencts.smn.publish import publish
from opencts.smn.service import SmnService
from opencts.smn.ssrf import EndpointRefused, check_url
from opencts.validation import describe

router = APIRouter(tags=["smn"])
M = TypeVar("M", bound=BaseModel)

_BASE = "/v2/{project_id}/notifications"
_TOPIC = _BASE + "/topics/{topic_urn}"
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Limit = Annotated[int, Query(ge=1, le=100)]


def _smn(services: Services) -> SmnService:
    smn: SmnService | None = getattr(services, "smn", None)
    if smn is None:
        raise OpenCTSError("SMN is not running in this process")
    return smn


def _json(request: Request, body: dict[str, Any], status: int = 200) -> Response:
    return Response(
        orjson.dumps({"request_id": request_id(request), **body}),
        status_code=status,
        media_type="application/json",
    )


@router.get("/v2/notifications/signing-cert.pem", name="getSigningCert", summary="The message-signing cert")
async def signing_cert(services: ServicesDep) -> Response:
    return Response(_smn(services).signer.cert_pem, media_type="application/x-pem-file")


def _link_answer(request: Request, outcome: str, row: Any, title: str, text: str) -> Response:
    if "text/html" in request.headers.get("accept", ""):
        page = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>"
            f"<p><code>{html.escape(row.subscription_urn)}</code></p></body></html>"
        )
        return Response(page, media_type="text/html; charset=utf-8")
    return _json(
        request,
        {"result": outcome, "subscription_urn": row.subscription_urn, "topic_urn": row.topic_urn},
    )


@router.get(
    "/v2/notifications/subscriptions/confirm",
    name="confirmSubscription",
    summary="The link in a confirmation message (idempotent; the token is the secret)",
)
async def confirm(request: Request, services: ServicesDep, token: str = "") -> Response:
    outcome, row = await services.db.write(lambda conn: subscriptions.confirm(conn, token))
    texts = {
        "confirmed": ("Subscription confirmed", f"You will now receive messages from {row.topic_urn}."),
        "already_confirmed": ("Already confirmed", f"You already receive messages from {row.topic_urn}."),
        "cancelled": ("Subscription cancelled", "This subscription was cancelled; subscribe again to renew."),
    }
    title, text = texts[outcome]
    return _link_answer(request, outcome, row, title, text)


@router.get(
    "/v2/notifications/subscriptions/unsubscribe",
    name="showUnsubscribe",
    summary="The unsubscribe link in every message: a page whose button POSTs (mail scanners only GET)",
)
async def unsubscribe_page(request: Request, services: ServicesDep, token: str = "") -> Response:
    row = await services.db.read(lambda conn: subscriptions.by_token(conn, token))
    action = html.escape(str(request.url), quote=True)
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Unsubscribe</title></head><body>"
        f"<h1>Unsubscribe</h1><p>Stop messages from <code>{html.escape(row.topic_urn)}</code> "
        f"to <code>{html.escape(row.endpoint)}</code>?</p>"
        f"<form method='post' action='{action}'><button type='submit'>Unsubscribe</button></form>"
        "</body></html>"
    )
    return Response(page, media_type="text/html; charset=utf-8")


@router.post("/v2/notifications/subscriptions/unsubscribe", name="unsubscribe", summary="Unsubscribe by link")
async def unsubscribe(request: Request, services: ServicesDep, token: str = "") -> Response:
    outcome, row = await services.db.write(lambda conn: subscriptions.unsubscribe(conn, token))
    return _link_answer(request, outcome, row, "Unsubscribed", f"No more messages from {row.topic_urn}.")


# --- SMN v2 operations ----------------------------------------------------------------------------------


@router.get("/v2/notifications/protocols", name="listProtocols", summary="ListProtocols")
async def list_protocols(
    *, request: Request, caller: Annotated[Principal, Depends(require("smn:protocol:list"))]
) -> Response:
    return _json(request, {"protocols": list(PROTOCOLS)})


@router.post(_BASE + "/topics", name="createTopic", summary="CreateTopic")
async def create_topic(
    *,
    project_id: str,
    request: Request,
    services: ServicesDep,
    caller: Annotated[Principal, Depends(require("smn:topic:create"))],
) -> Response:
    body = await json_body(request, CreateTopic)
    region, now = _smn(services).region, now_ms()
    urn = await services.db.write(
        lambda conn: topics.create(conn, project_id=project_id, region=region, body=body, now=now)
    )
    return _json(request, {"topic_urn": urn})


@router.get(_BASE + "/topics", name="listTopics", summary="ListTopics")
async def list_topics(
    *,
    project_id: str,
    request: Request,
    services: ServicesDep,
    offset: Offset = 0,
    limit: Limit = 100,
    caller: Annotated[Principal, Depends(require("smn:topic:list"))],
) -> Response:
    keys = ("enterprise_project_id", "name", "fuzzy_name", "topic_id", "fuzzy_display_name")
    filters = {k: request.query_params.get(k) for k in keys}
    count, found = await services.db.read(
        lambda conn: topics.list_topics(conn, project_id, offset=offset, limit=limit, filters=filters)
    )
    return _json(request, {"topic_count": count, "topics": found})


@router.get(_TOPIC, name="listTopicDetails", summary="ListTopicDetails")
async def show_topic(
    *,
    project_id: str,
    topic_urn: str,
    request: Request,
    services: ServicesDep,
    caller: Annotated[Principal, Depends(require("smn:topic:get"))],
) -> Response:
    row = await services.db.read(lambda conn: topics.get(conn, project_id, topic_urn))
    return _json(request, topics.render(row))


@router.put(_TOPIC, name="updateTopic", summary="UpdateTopic")
async def update_topic(
    *,
    project_id: str,
    topic_urn: str,
    request: Request,
    services: ServicesDep,
    caller: Annotated[Principal, Depends(require("smn:topic:update"))],
) -> Response:
    body = await json_body(request, UpdateTopic)
    now = now_ms()
    await services.db.write(
        lambda conn: topics.update_display_name(conn, project_id, topic_urn, body.display_name, now)
    )
    return _json(request, {})


@router.delete(_TOPIC, name="deleteTopic", summary="DeleteTopic (with its subscriptions and queue)")
async def delete_topic(
    *,
    project_id: str,
    topic_urn: str,
    request: Request,
    services: ServicesDep,
    caller: Annotated[Principal, Depends(require("smn:topic:delete"))],
) -> Response:
    await services.db.write(lambda conn: topics.remove(conn, project_id, topic_urn))
    return _json(request, {})


@router.post(_TOPIC + "/subscriptions", name="addSubscription", summary="AddSubscription (unconfirmed)")
async def add_subscription(
    *,
    project_id: str,
    topic_urn: str,
    request: Request,
    services: ServicesDep,
    caller: Annotated[Principal, Depends(require("smn:subscription:create"))],
) -> Response:
    body = await json_body(request, AddSubscription)
    try:
        items = body.items()
    except ValidationError as exc:
        raise BadRequest(describe(exc)) from None
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    smn = _smn(services)
    for item in items:
        if item.protocol in ("http", "https"):
            try:
                await check_url(item.endpoint, allow_private=smn.settings.allow_private_endpoints)
            except EndpointRefused as exc:
                raise BadRequest(f"endpoint: {exc}") from None
    now = now_ms()
    urns = await services.db.write(
        lambda conn: subscriptions.add(
            conn, project_id=project_id, topic_urn=topic_urn, items=items, signer=smn.signer, now=now
        )
    )
    smn.worker.wake()
    extra = {"subscription_urns": urns} if len(urns) > 1 else {}
    return _json(request, {"subscription_urn": urns[0], **extra})


@router.get(_TOPIC + "/subscriptions", name="listSubscriptionsByTopic", summary="ListSubscriptionsByTopic")
async def list_by_topic(
    *,
    project_id: str,
    topic_urn: str,
    request: Request,
    services: ServicesDep,
    offset: Offset = 0,
    limit: Limit = 100,
    fuzzy_remark: str | None = None,
    caller: Annotated[Principal, Depends(require("smn:subscription:list"))],
) -> Response:
    count, found = await services.db.read(
        lambda conn: subscriptions.list_subscriptions(
            conn, project_id, offset=offset, limit=limit, topic_urn=topic_urn, fuzzy_remark=fuzzy_remark
        )
    )
    return _json(request, {"subscription_count": count, "subscriptions": found})


@router.get(_BASE + "/subscriptions", name="listSubscriptions", summary="ListSubscriptions")
async def list_all_subscriptions(
    *,
    project_id: str,
    request: Request,
    services: ServicesDep,
    offset: Offset = 0,
    limit: Limit = 100,
    protocol: str | None = None,
    status: Annotated[int | None, Query(ge=0, le=4)] = None,
    endpoint: str | None = None,
    fuzzy_remark: str | None = None,
    caller: Annotated[Principal, Depends(require("smn:subscription:list"))],
) -> Response:
    count, found = await services.db.read(
        lambda conn: subscriptions.list_subscriptions(
            conn,
            project_id,
            offset=offset,
            limit=limit,
            protocol=protocol,
            status=status,
            endpoint=endpoint,
            fuzzy_remark=fuzzy_remark,
        )
    )
    return _json(request, {"subscription_count": count, "subscriptions": found})


@router.delete(
    _BASE + "/subscriptions/{subscription_urn}", name="cancelSubscription", summary="CancelSubscription"
)
async def cancel_subscription(
    *,
    project_id: str,
    subscription_urn: str,
    request: Request,
    services: ServicesDep,
    caller: Annotated[Principal, Depends(require("smn:subscription:delete"))],
) -> Response:
    await services.db.write(lambda conn: subscriptions.cancel(conn, project_id, subscription_urn))
    return _json(request, {})


@router.post(_TOPIC + "/publish", name="publishMessage", summary="PublishMessage (queued durably, then sent)")
async def publish_message(
    *,
    project_id: str,
    topic_urn: str,
    request: Request,
    services: ServicesDep,
    caller: Annotated[Principal, Depends(require("smn:message:publish"))],
) -> Response:
    body = await json_body(request, PublishMessage)
    now = now_ms()
    message_id, queued = await services.db.write(
        lambda conn: publish(conn, project_id=project_id, topic_urn=topic_urn, body=body, now=now)
    )
    if queued:
        _smn(services).worker.wake()
    return _json(request, {"message_id": message_id})


# --- ours: the outbox -----------------------------------------------------------------------------------


@router.get(_BASE + "/deliveries", name="listDeliveries", summary="The outbox: pending, delivered, dead")
async def list_deliveries(
    *,
    project_id: str,
    request: Request,
    services: ServicesDep,
    status: Literal["pending", "delivering", "delivered", "dead"] | None = None,
    message_id: str | None = None,
    subscription_urn: str | None = None,
    offset: Offset = 0,
    limit: Limit = 100,
    caller: Annotated[Principal, Depends(require("smn:delivery:list"))],
) -> Response:
    count, found = await services.db.read(
        lambda conn: deliveries.list_deliveries(
            conn,
            project_id,
            status=status,
            offset=offset,
            limit=limit,
            message_id=message_id,
            subscription_urn=subscription_urn,
        )
    )
    return _json(request, {"delivery_count": count, "deliveries": found})


@router.post(
    _BASE + "/deliveries/{delivery_id}/retry", name="retryDelivery", summary="Re-queue a dead delivery"
)
async def retry_delivery(
    *,
    project_id: str,
    delivery_id: Annotated[int, Path(ge=1, le=2**62)],
    request: Request,
    services: ServicesDep,
    caller: Annotated[Principal, Depends(require("smn:delivery:retry"))],
) -> Response:
    now = now_ms()
    found = await services.db.write(lambda conn: deliveries.retry(conn, project_id, delivery_id, now))
    _smn(services).worker.wake()
    return _json(request, {"delivery": found})
