"""SMN v2 (``/v2/{project_id}/notifications/...``) as the official SDK calls it, plus ours: the outbox
(``deliveries``: dead letters and retry), the confirmation and unsubscribe links, and the signing certificate.

Every answer carries ``request_id``; counts and ``status`` are real ints (the SDK coerces naively, §5.13).
Every error leaving these routes is in SMN's shape, ``{"request_id", "code": "SMN.xxxxxxxx", "message"}``
(:class:`SmnRoute`), which the SDK reads into ``error_code``/``error_msg``; the links a person opens answer
HTML pages, errors included, unless the client asks for JSON.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from opencts.api.auth import require
from opencts.api.bodies import json_body, json_response
from opencts.api.deps import Services, ServicesDep
from opencts.api.errors import request_id
from opencts.clock import now_ms
from opencts.config import Settings
from opencts.errors import BadRequest, NotFound, OpenCTSError, Overloaded
from opencts.iam.principal import Principal
from opencts.smn import deliveries, subscriptions, topics
from opencts.smn.errors import PROTOCOL_NOT_CONFIGURED, EndpointNotAllowed, smn_code
from opencts.smn.model import (
    PROTOCOLS,
    AddSubscription,
    CreateTopic,
    NewSubscription,
    PublishMessage,
    UpdateTopic,
)
from opencts.smn.publish import publish
from opencts.smn.service import SmnService
from opencts.smn.ssrf import EndpointRefused, check_url
from opencts.validation import describe, describe_request

log = logging.getLogger("opencts.api")


def smn_error(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """An error in SMN's shape; ``X-Request-Id`` repeats the body's id (the SDK reads the header)."""
    rid = request_id(request)
    body = orjson.dumps({"request_id": rid, "code": smn_code(code, status), "message": message})
    return Response(
        body,
        status_code=status,
        media_type="application/json",
        headers={"X-Request-Id": rid, **(headers or {})},
    )


class SmnRoute(APIRoute):
    """A route whose every error (auth, validation, domain, database refusal) leaves in SMN's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except OpenCTSError as exc:
                if exc.status >= 500:
                    log.error("internal error %s: %r", request_id(request), exc)
                headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Overloaded) else None
                return smn_error(request, exc.status, exc.code, exc.message, headers)
            except RequestValidationError as exc:
                return smn_error(request, 400, "", describe_request(exc.errors()))
            except StarletteHTTPException as exc:
                message = exc.detail if isinstance(exc.detail, str) else "request failed"
                return smn_error(request, exc.status_code, "", message, dict(exc.headers or {}))
            except DataError:
                return smn_error(
                    request, 400, "", "a parameter holds characters or a value that is not allowed"
                )
            except Exception:
                # a bug, never bad input: logged with its traceback, answered without one
                log.exception("unhandled error in request %s", request_id(request))
                return smn_error(request, 500, "", "internal error; quote the request id to the operator")

        return route


router = APIRouter(tags=["smn"], route_class=SmnRoute)

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
    return json_response({"request_id": request_id(request), **body}, status)


@router.get("/v2/notifications/signing-cert.pem", name="getSigningCert", summary="The message-signing cert")
async def signing_cert(services: ServicesDep) -> Response:
    return Response(_smn(services).signer.cert_pem, media_type="application/x-pem-file")


def _wants_json(request: Request) -> bool:
    """Programs that ask for JSON get it; a browser, or a client that states no preference, gets a page."""
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def _page(title: str, body: str, status: int = 200) -> Response:
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title></head>"
        "<body style='font-family: sans-serif; max-width: 40em; margin: 3em auto; padding: 0 1em'>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return Response(page, status_code=status, media_type="text/html; charset=utf-8")


def _link_answer(request: Request, outcome: str, row: Any, title: str, text: str) -> Response:
    if _wants_json(request):
        return _json(
            request,
            {"result": outcome, "subscription_urn": row.subscription_urn, "topic_urn": row.topic_urn},
        )
    return _page(
        title,
        f"<p>{html.escape(text)}</p><p>Subscription: <code>{html.escape(row.subscription_urn)}</code></p>",
    )


def _bad_link(request: Request, exc: NotFound) -> Response:
    if _wants_json(request):
        return smn_error(request, exc.status, exc.code, exc.message)
    text = (
        "This link is not valid: the subscription it belonged to no longer exists, or the link was mistyped."
    )
    return _page("Link not valid", f"<p>{html.escape(text)}</p>", status=exc.status)


@router.get(
    "/v2/notifications/subscriptions/confirm",
    name="confirmSubscription",
    summary="The link in a confirmation message (idempotent; the token is the secret)",
)
async def confirm(request: Request, services: ServicesDep, token: str = "") -> Response:
    try:
        outcome, row = await services.db.write(lambda conn: subscriptions.confirm(conn, token))
    except NotFound as exc:
        return _bad_link(request, exc)
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
    try:
        row = await services.db.read(lambda conn: subscriptions.by_token(conn, token))
    except NotFound as exc:
        return _bad_link(request, exc)
    # relative to this page's own path: never built from the Host header, which the client chooses
    action = html.escape(f"unsubscribe?token={quote(token, safe='')}", quote=True)
    return _page(
        "Unsubscribe",
        f"<p>Stop messages from <code>{html.escape(row.topic_urn)}</code> "
        f"to <code>{html.escape(row.endpoint)}</code>?</p>"
        f"<form method='post' action='{action}'><button type='submit'>Unsubscribe</button></form>",
    )


@router.post("/v2/notifications/subscriptions/unsubscribe", name="unsubscribe", summary="Unsubscribe by link")
async def unsubscribe(request: Request, services: ServicesDep, token: str = "") -> Response:
    """The page's button, and RFC 8058 one-click unsubscribe (a mail client POSTs the link)."""
    try:
        outcome, row = await services.db.write(lambda conn: subscriptions.unsubscribe(conn, token))
    except NotFound as exc:
        return _bad_link(request, exc)
    return _link_answer(request, outcome, row, "Unsubscribed", f"No more messages from {row.topic_urn}.")


def _unconfigured(item: NewSubscription, settings: Settings) -> str | None:
    """Why this OpenCTS cannot deliver to ``item``'s protocol at all, or None."""
    setting = {"email": settings.smtp_host, "sms": settings.sms_gateway_url}
    names = {"email": "OPENCTS_SMTP_HOST", "sms": "OPENCTS_SMS_GATEWAY_URL"}
    if item.protocol in setting and not setting[item.protocol]:
        return (
            f"{item.protocol} is not configured on this OpenCTS (the operator sets {names[item.protocol]}),"
            " so nothing could be sent to it"
        )
    return None


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
        why = _unconfigured(item, smn.settings)
        if why is not None:
            raise EndpointNotAllowed(f"protocol {item.protocol}: {why}", code=PROTOCOL_NOT_CONFIGURED)
        if item.protocol in ("http", "https"):
            try:
                await check_url(item.endpoint, allow_private=smn.settings.allow_private_endpoints)
            except EndpointRefused as exc:
                raise EndpointNotAllowed(f"endpoint: {exc}") from None
    now = now_ms()
    urns = await services.db.write(
        lambda conn: subscriptions.add(
            conn,
            project_id=project_id,
            topic_urn=topic_urn,
            items=items,
            signer=smn.signer,
            box=services.box,
            now=now,
        )
    )
    smn.wake_deliveries()
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
        _smn(services).wake_deliveries()
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
    _smn(services).wake_deliveries()
    return _json(request, {"delivery": found})
