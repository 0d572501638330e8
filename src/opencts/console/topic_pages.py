"""``/console/topics``: SMN topics and subscriptions, with each topic's deliveries and dead letters.

The handlers call what the SMN API routes call (``api/smn.py``): the ``smn.topics``, ``smn.subscriptions``
and ``smn.deliveries`` functions, the request models for validation, the same check that a protocol is
configured and that an HTTP endpoint may be reached, and the delivery worker's wake-up. Changes are
traced as SMN operations by the session's user.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import Connection

from opencts.api.deps import Services
from opencts.api.smn import _unconfigured
from opencts.clock import now_ms
from opencts.console import access
from opencts.console.access import ConsoleUser
from opencts.console.notify_pages import posted
from opencts.console.pages import ConsoleRoute, render, signed_in
from opencts.errors import BadRequest, OpenCTSError
from opencts.smn import deliveries, subscriptions, topics
from opencts.smn.model import PROTOCOLS, CreateTopic, NewSubscription
from opencts.smn.service import SmnService
from opencts.smn.ssrf import EndpointRefused, check_url
from opencts.smn.statuses import CANCELLED, CONFIRMED, UNCONFIRMED
from opencts.traces.self_audit import AuditedCall, record
from opencts.validation import describe

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

SUBSCRIPTION_STATUS = {UNCONFIRMED: "unconfirmed", CONFIRMED: "confirmed", CANCELLED: "cancelled"}
DELIVERY_VIEWS = {
    "": "All deliveries",
    "dead": "Dead letters",
    "pending": "Waiting",
    "delivered": "Delivered",
}
PAGE = 50


def _smn(services: Services) -> SmnService:
    smn: SmnService | None = getattr(services, "smn", None)
    if smn is None:
        raise OpenCTSError("SMN is not running in this process")
    return smn


def _here(topic_urn: str) -> str:
    return f"/console/topics/{urllib.parse.quote(topic_urn, safe='')}"


async def _audit(request: Request, services: Services, user: ConsoleUser, operation: str, name: str) -> None:
    """The change in the trail as the SMN API's own call would be, a ConsoleAction by the session's user."""
    call = AuditedCall(
        operation=operation,
        method="POST",
        path=request.url.path,
        status=200,
        request_body=None,
        response_body=None,
        request_id=str(getattr(request.state, "request_id", "")),
        source_ip=access.client_ip(request),
        time=now_ms(),
        user=access._principal_dict(user.principal),
        resource_name=name[:256],
        trace_type="ConsoleAction",
        service_type="SMN",
    )
    await record(services.writer, user.project_id, call)


# ---- topics -------------------------------------------------------------------------------------------


async def _topics_page(
    request: Request, services: Services, user: ConsoleUser, *, error: str | None, typed: dict[str, str]
) -> Response:
    def read(conn: Connection) -> list[dict[str, Any]]:
        _, found = topics.list_topics(conn, user.project_id, offset=0, limit=100, filters={})
        for topic in found:
            topic["subscription_count"], _ = subscriptions.list_subscriptions(
                conn, user.project_id, offset=0, limit=1, topic_urn=topic["topic_urn"]
            )
            topic["used_by"] = topics.users(conn, topic["topic_urn"])
            topic["dead_count"], _ = deliveries.list_deliveries(
                conn, user.project_id, status="dead", offset=0, limit=1, topic_urn=topic["topic_urn"]
            )
        return found

    found = await services.db.read(read)
    done = request.query_params.get("done")
    context = {"topics": found, "error": error, "typed": typed, "notice": _notice(done)}
    return render(request, "topics.html", context, status=400 if error else 200)


def _notice(done: str | None) -> str | None:
    if not done or ":" not in done:
        return None
    what, _, name = done.partition(":")
    words = {"deleted": "Topic {} deleted.", "created": "Topic {} created."}
    return words[what].format(name[:255]) if what in words else None


@router.get("/topics", name="consoleTopics")
async def topics_page(request: Request) -> Response:
    services, user = await signed_in(request, "smn:topic:list")
    return await _topics_page(request, services, user, error=None, typed={})


@router.post("/topics", name="consoleCreateTopic")
async def create_topic(request: Request) -> Response:
    services, user, form = await posted(request, "smn:topic:create")
    typed = {"name": form.get("name").strip(), "display_name": form.get("display_name").strip()}
    region = _smn(services).region
    try:
        body = CreateTopic.model_validate(typed)
        urn = await services.db.write(
            lambda conn: topics.create(
                conn, project_id=user.project_id, region=region, body=body, now=now_ms()
            )
        )
    except ValidationError as exc:
        error = f"The topic was not created: {_words(describe(exc))}. Correct it and create it again."
        return await _topics_page(request, services, user, error=error, typed=typed)
    except OpenCTSError as exc:
        if exc.status >= 500:
            raise
        error = f"The topic was not created: {exc.message}; choose another name."
        return await _topics_page(request, services, user, error=error, typed=typed)
    await _audit(request, services, user, "createTopic", body.name)
    return RedirectResponse(_here(urn) + "?done=created", status_code=303)


def _words(described: str) -> str:
    """Model errors with the form's labels instead of the body's field names."""
    labels = {"name:": "Topic name:", "display_name:": "Display name:", "endpoint:": "Endpoint:"}
    for field, label in labels.items():
        if described.startswith(field):
            return label + described[len(field) :]
    return described


@router.post("/topics/{topic_urn}/delete", name="consoleDeleteTopic")
async def delete_topic(request: Request, topic_urn: str) -> Response:
    services, user, _ = await posted(request, "smn:topic:delete")
    try:
        await services.db.write(lambda conn: topics.remove(conn, user.project_id, topic_urn))
    except OpenCTSError as exc:
        if exc.status >= 500 or exc.status == 404:
            raise
        return await _topic_page(
            request, services, user, topic_urn, error=exc.message, typed={}, status=exc.status
        )
    await _audit(request, services, user, "deleteTopic", topic_urn)
    name = topic_urn.rsplit(":", 1)[-1]
    return RedirectResponse(f"/console/topics?done={urllib.parse.quote('deleted:' + name)}", 303)


# ---- one topic: subscriptions and deliveries ------------------------------------------------------------


async def _topic_page(
    request: Request,
    services: Services,
    user: ConsoleUser,
    topic_urn: str,
    *,
    error: str | None,
    typed: dict[str, str],
    status: int = 400,
) -> Response:
    view = request.query_params.get("deliveries", "")
    if view not in DELIVERY_VIEWS:
        view = ""
    given = request.query_params.get("offset", "0")
    offset = min(int(given), 10_000_000) if given.isdigit() else 0

    def read(conn: Connection) -> dict[str, Any]:
        topic = topics.render(topics.get(conn, user.project_id, topic_urn))
        _, subs = subscriptions.list_subscriptions(
            conn, user.project_id, offset=0, limit=100, topic_urn=topic_urn
        )
        total, sent = deliveries.list_deliveries(
            conn, user.project_id, status=view or None, offset=offset, limit=PAGE, topic_urn=topic_urn
        )
        dead, _ = deliveries.list_deliveries(
            conn, user.project_id, status="dead", offset=0, limit=1, topic_urn=topic_urn
        )
        return {
            "topic": topic,
            "subscriptions": subs,
            "deliveries": sent,
            "delivery_count": total,
            "dead_count": dead,
            "used_by": topics.users(conn, topic_urn),
        }

    context = await services.db.read(read)
    context.update(
        error=error,
        typed=typed,
        view=view,
        views=DELIVERY_VIEWS,
        protocols=PROTOCOLS,
        sub_status=SUBSCRIPTION_STATUS,
        here=_here(topic_urn),
        notice=_topic_notice(request.query_params.get("done")),
        page=PAGE,
        offset=offset,
    )
    return render(request, "topic.html", context, status=status if error else 200)


def _topic_notice(done: str | None) -> str | None:
    return {
        "created": "Topic created. Add a subscription: it receives messages once its endpoint confirms.",
        "subscribed": "Subscription added. A confirmation was sent (unless it was confirmed already);"
        " messages go out once it is confirmed.",
        "removed": "Subscription removed.",
        "retried": "Delivery queued again.",
    }.get(done or "")


@router.get("/topics/{topic_urn}", name="consoleTopic")
async def topic_page(request: Request, topic_urn: str) -> Response:
    services, user = await signed_in(request, "smn:topic:get")
    return await _topic_page(request, services, user, topic_urn, error=None, typed={})


@router.post("/topics/{topic_urn}/subscriptions", name="consoleAddSubscription")
async def add_subscription(request: Request, topic_urn: str) -> Response:
    services, user, form = await posted(request, "smn:subscription:create")
    smn = _smn(services)
    typed = {k: form.get(k).strip() for k in ("protocol", "endpoint", "remark")}
    try:
        item = NewSubscription.model_validate(typed)
        why = _unconfigured(item, smn.settings)
        if why is not None:
            raise BadRequest(f"{why}; choose another protocol")
        if item.protocol in ("http", "https"):
            try:
                await check_url(item.endpoint, allow_private=smn.settings.allow_private_endpoints)
            except EndpointRefused as exc:
                raise BadRequest(f"endpoint: {exc}; give an address the server may reach") from None
        await services.db.write(
            lambda conn: subscriptions.add(
                conn,
                project_id=user.project_id,
                topic_urn=topic_urn,
                items=[item],
                signer=smn.signer,
                box=services.box,
                now=now_ms(),
            )
        )
    except ValidationError as exc:
        error = f"The subscription was not added: {_words(describe(exc))}. Correct it and add it again."
        return await _topic_page(request, services, user, topic_urn, error=error, typed=typed)
    except OpenCTSError as exc:
        if exc.status >= 500 or exc.status == 404:
            raise
        error = f"The subscription was not added: {exc.message}"
        return await _topic_page(request, services, user, topic_urn, error=error, typed=typed)
    smn.wake_deliveries()
    await _audit(request, services, user, "addSubscription", f"{item.protocol}:{item.endpoint}")
    return RedirectResponse(_here(topic_urn) + "?done=subscribed", status_code=303)


@router.post("/topics/{topic_urn}/subscriptions/remove", name="consoleRemoveSubscription")
async def remove_subscription(request: Request, topic_urn: str) -> Response:
    services, user, form = await posted(request, "smn:subscription:delete")
    urn = form.get("subscription_urn")
    if not urn.startswith(topic_urn + ":"):
        raise BadRequest("that subscription is not one of this topic; use the Remove button of its row")
    await services.db.write(lambda conn: subscriptions.cancel(conn, user.project_id, urn))
    await _audit(request, services, user, "deleteSubscription", urn)
    return RedirectResponse(_here(topic_urn) + "?done=removed", status_code=303)


@router.post("/topics/{topic_urn}/deliveries/{delivery_id}/retry", name="consoleRetryDelivery")
async def retry_delivery(request: Request, topic_urn: str, delivery_id: int) -> Response:
    services, user, _ = await posted(request, "smn:delivery:retry")
    if not 1 <= delivery_id <= 2**62:
        raise BadRequest("open the topic page again and use a delivery's Retry button")
    try:
        await services.db.write(lambda conn: deliveries.retry(conn, user.project_id, delivery_id, now_ms()))
    except OpenCTSError as exc:
        if exc.status >= 500 or exc.status == 404:
            raise
        return await _topic_page(request, services, user, topic_urn, error=exc.message, typed={})
    _smn(services).wake_deliveries()
    return RedirectResponse(_here(topic_urn) + "?deliveries=&done=retried", status_code=303)
