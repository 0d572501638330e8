"""``/console/notifications``: Key Event Notifications (list, create, modify, enable, disable, delete).

Each handler does what the matching API route does (``api/notifications.py``): the same action names,
the same repository functions in one write transaction, the same matcher invalidation, so the next
trace is judged by the new rules. The form is reshaped by :mod:`opencts.console.notify_form` and judged
by the API's own body model; a refused form comes back with its input and the reasons.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import Connection

from opencts.api.deps import Services, read_body
from opencts.console import access, notify_form
from opencts.console.access import ConsoleUser
from opencts.console.notify_form import Draft, Pairs
from opencts.console.pages import MAX_FORM_BYTES, ConsoleRoute, check_csrf, render, signed_in
from opencts.errors import BadRequest, NotFound, OpenCTSError
from opencts.iam import groups
from opencts.notifications import repository
from opencts.notifications.model import MAX_RULES, MAX_USER_GROUPS
from opencts.smn import topics
from opencts.trackers import catalogue
from opencts.trackers.operations import full_catalogue

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


async def read_pairs(request: Request) -> Pairs:
    """An urlencoded form, bounded, whose fields may repeat (the picked operations)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise BadRequest("send the form from the console page (application/x-www-form-urlencoded)")
    return notify_form.parse_pairs(await read_body(request, MAX_FORM_BYTES))


async def posted(request: Request, action: str) -> tuple[Services, ConsoleUser, Pairs]:
    """A POST's services, user (allowed ``action``) and form, its CSRF token checked before anything."""
    services, user = await signed_in(request, action)
    form = await read_pairs(request)
    check_csrf(user, form.as_dict())
    return services, user, form


def changed(services: Services, project_id: str) -> None:
    """As the API does after every change: this process's matcher for the project is rebuilt."""
    services.matchers.invalidate(project_id)
    services.matchers.warm(services.db, project_id)


@router.get("/notifications/picker.js", name="consoleNotificationPicker")
async def picker_script() -> Response:
    data = resources.files("opencts.console").joinpath("static", "notify.js").read_bytes()
    return Response(
        data, media_type="text/javascript; charset=utf-8", headers={"Cache-Control": "max-age=3600"}
    )


@router.get("/notifications/notify.css", name="consoleNotificationStyles")
async def picker_styles() -> Response:
    data = resources.files("opencts.console").joinpath("static", "notify.css").read_bytes()
    return Response(data, media_type="text/css; charset=utf-8", headers={"Cache-Control": "max-age=3600"})


@router.get("/notifications", name="consoleNotifications")
async def list_page(request: Request) -> Response:
    services, user = await signed_in(request, "cts:notification:list")

    def read(conn: Connection) -> tuple[list[dict[str, Any]], dict[str, tuple[int, int]], dict[str, str]]:
        found = repository.list_notifications(conn, project_id=user.project_id, notification_type="smn")
        alarms = repository.alarm_counts(conn, [n["notification_id"] for n in found])
        return found, alarms, _topic_names(conn, user.project_id)

    found, alarms, names = await services.db.read(read)
    context = {
        "notifications": found,
        "alarms": alarms,
        "topic_names": names,
        "notice": notify_form.notice(request.query_params.get("done")),
        "error": None,
    }
    return render(request, "notifications.html", context)


def _topic_names(conn: Connection, project_id: str) -> dict[str, str]:
    _, found = topics.list_topics(conn, project_id, offset=0, limit=100, filters={})
    return {t["topic_urn"]: t["display_name"] or t["name"] for t in found}


async def _notification(services: Services, user: ConsoleUser, notification_id: str) -> dict[str, Any]:
    found = await services.db.read(
        lambda conn: repository.list_notifications(conn, project_id=user.project_id, notification_type="smn")
    )
    for item in found:
        if item["notification_id"] == notification_id:
            return item
    raise NotFound(
        f"notification {notification_id[:64]} does not exist in project {user.project.name};"
        " pick one from the Key Event Notifications list"
    )


async def _form_context(services: Services, user: ConsoleUser) -> dict[str, Any]:
    """What the form offers: the project's topics, the catalogue, and names for users and groups."""
    can_groups = user.principal.can("iam:groups:list")

    def read(conn: Connection) -> dict[str, Any]:
        _, found = topics.list_topics(conn, user.project_id, offset=0, limit=100, filters={})
        iam_groups: list[tuple[str, list[str]]] = []
        if can_groups:
            for group in groups.list_groups(conn, domain_id=user.principal.domain_id)[:50]:
                members = groups.list_members(conn, domain_id=group.domain_id, group_id=group.id)
                iam_groups.append((group.name, [m.name for m in members]))
        seen = [u["name"] for u in catalogue.user_list(conn, project_id=user.project_id)[:200]]
        return {"topics": found, "iam_groups": iam_groups, "seen_users": seen}

    context = await services.db.read(read)
    context.update(
        catalogue=notify_form.catalogue_json(),
        services=list(full_catalogue()),
        fields=notify_form.FIELDS,
        max_rules=MAX_RULES,
        max_groups=MAX_USER_GROUPS,
    )
    return context


async def _form_page(
    request: Request,
    services: Services,
    user: ConsoleUser,
    draft: Draft,
    *,
    notification_id: str | None,
    errors: list[str],
    status: int = 200,
) -> Response:
    context = await _form_context(services, user)
    context.update(draft=draft, notification_id=notification_id, errors=errors)
    return render(request, "notification.html", context, status=status)


@router.get("/notifications/new", name="consoleNewNotification")
async def new_page(request: Request) -> Response:
    services, user = await signed_in(request, "cts:notification:create")
    return await _form_page(request, services, user, Draft(), notification_id=None, errors=[])


@router.post("/notifications/new", name="consoleCreateNotification")
async def create(request: Request) -> Response:
    services, user, form = await posted(request, "cts:notification:create")
    draft, problems = notify_form.read_draft(form)

    def store(conn: Connection) -> str:
        body = notify_form.create_body(draft)
        repository.create(conn, project_id=user.project_id, body=body)
        return body.notification_name

    return await _save(request, services, user, draft, problems, None, store, "createNotification", "created")


async def _save(
    request: Request,
    services: Services,
    user: ConsoleUser,
    draft: Draft,
    problems: list[str],
    notification_id: str | None,
    store: Callable[[Connection], str],
    operation: str,
    verb: str,
) -> Response:
    """Create or modify: the form's problems, then the API's models and repository judge the draft; a
    refusal comes back as the form with its input and what to fix."""
    try:
        if problems:
            raise BadRequest("; ".join(problems))
        name = await services.db.write(store)
    except ValidationError as exc:
        errors = notify_form.messages(exc)
        return await _form_page(
            request, services, user, draft, notification_id=notification_id, errors=errors, status=400
        )
    except OpenCTSError as exc:
        if exc.status >= 500:
            raise
        errors = problems or [exc.message]
        return await _form_page(
            request, services, user, draft, notification_id=notification_id, errors=errors, status=exc.status
        )
    changed(services, user.project_id)
    await access.audit_change(request, services, user, operation, name)
    done = urllib.parse.quote(f"{verb}:{name}")
    return RedirectResponse(f"/console/notifications?done={done}", status_code=303)


@router.get("/notifications/{notification_id}", name="consoleNotification")
async def modify_page(request: Request, notification_id: str) -> Response:
    services, user = await signed_in(request, "cts:notification:list")
    found = await _notification(services, user, notification_id)
    draft = notify_form.draft_of(found)
    return await _form_page(request, services, user, draft, notification_id=notification_id, errors=[])


@router.post("/notifications/{notification_id}", name="consoleModifyNotification")
async def modify(request: Request, notification_id: str) -> Response:
    services, user, form = await posted(request, "cts:notification:update")
    found = await _notification(services, user, notification_id)
    draft, problems = notify_form.read_draft(form)
    draft.status = found["status"]  # Modify changes the configuration; the list's buttons the status

    def store(conn: Connection) -> str:
        body = notify_form.update_body(draft, notification_id)
        repository.update(conn, project_id=user.project_id, body=body)
        return body.notification_name

    return await _save(
        request, services, user, draft, problems, notification_id, store, "updateNotification", "saved"
    )


@router.post("/notifications/{notification_id}/status", name="consoleNotificationStatus")
async def set_status(request: Request, notification_id: str) -> Response:
    services, user, form = await posted(request, "cts:notification:update")
    status = form.get("status")
    if status not in ("enabled", "disabled"):
        raise BadRequest("status must be enabled or disabled; use the buttons of the notification list")
    found = await _notification(services, user, notification_id)
    draft = notify_form.draft_of(found)
    draft.status = status
    try:
        body = notify_form.update_body(draft, notification_id)
    except ValidationError as exc:
        raise BadRequest(
            f"notification {found['notification_name']} cannot be {status}: "
            + "; ".join(notify_form.messages(exc))
            + " (open Modify to fix it)"
        ) from None
    await services.db.write(lambda conn: repository.update(conn, project_id=user.project_id, body=body))
    changed(services, user.project_id)
    await access.audit_change(request, services, user, "updateNotification", body.notification_name)
    done = urllib.parse.quote(f"{status}:{body.notification_name}")
    return RedirectResponse(f"/console/notifications?done={done}", status_code=303)


@router.post("/notifications/{notification_id}/delete", name="consoleDeleteNotification")
async def delete(request: Request, notification_id: str) -> Response:
    services, user, _ = await posted(request, "cts:notification:delete")
    found = await _notification(services, user, notification_id)
    await services.db.write(
        lambda conn: repository.delete_many(conn, project_id=user.project_id, ids=[notification_id])
    )
    changed(services, user.project_id)
    name = found["notification_name"]
    await access.audit_change(request, services, user, "deleteNotification", name)
    return RedirectResponse(f"/console/notifications?done={urllib.parse.quote('deleted:' + name)}", 303)
