"""CTS v3 key-event notifications, on the paths ``huaweicloudsdkcts.v3.CtsClient`` calls.

Note the asymmetry (spec §5.1): ``POST``/``PUT``/``DELETE /v3/{project_id}/notifications`` but ``GET
/v3/{project_id}/notifications/{smn|fun}``, and DELETE takes comma-separated ids in one query parameter
(§5.4). Each route's ``name`` is the CTS operation name, which the self-audit records as the trace name.
Every change invalidates this process's compiled matcher for the project, so the next trace is judged
by the new rules.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from opencts.api.auth import require
from opencts.api.bodies import json_body, json_response
from opencts.api.deps import Services, ServicesDep
from opencts.iam.principal import Principal
from opencts.notifications import repository
from opencts.notifications.model import CreateNotificationRequestBody, UpdateNotificationRequestBody

router = APIRouter(tags=["cts"])


Creator = Annotated[Principal, Depends(require("cts:notification:create"))]
Updater = Annotated[Principal, Depends(require("cts:notification:update"))]
Deleter = Annotated[Principal, Depends(require("cts:notification:delete"))]
Lister = Annotated[Principal, Depends(require("cts:notification:list"))]


def _changed(services: Services, project_id: str) -> None:
    services.matchers.invalidate(project_id)
    services.matchers.warm(services.db, project_id)


@router.post(
    "/v3/{project_id}/notifications",
    name="createNotification",
    status_code=201,
    summary="Create a key-event notification",
)
async def create_notification(
    project_id: str, request: Request, services: ServicesDep, caller: Creator
) -> Response:
    body = await json_body(request, CreateNotificationRequestBody)
    made = await services.db.write(lambda conn: repository.create(conn, project_id=project_id, body=body))
    _changed(services, project_id)
    return json_response(made, 201)


@router.put(
    "/v3/{project_id}/notifications",
    name="updateNotification",
    summary="Replace a notification's configuration, or enable/disable it",
)
async def update_notification(
    project_id: str, request: Request, services: ServicesDep, caller: Updater
) -> Response:
    body = await json_body(request, UpdateNotificationRequestBody)
    updated = await services.db.write(lambda conn: repository.update(conn, project_id=project_id, body=body))
    _changed(services, project_id)
    return json_response(updated)


@router.delete(
    "/v3/{project_id}/notifications",
    name="deleteNotification",
    summary="Delete notifications by notification_id (several ids separated by commas; all or none)",
    openapi_extra={
        "parameters": [
            {
                "name": "notification_id",
                "in": "query",
                "required": True,
                "schema": {"type": "string"},
                "description": "one id, or several separated by commas (n1,n2)",
            }
        ]
    },
)
async def delete_notification(
    project_id: str, request: Request, services: ServicesDep, caller: Deleter
) -> Response:
    ids = repository.parse_ids(request.query_params.get("notification_id"))
    await services.db.write(lambda conn: repository.delete_many(conn, project_id=project_id, ids=ids))
    _changed(services, project_id)
    return json_response({})


@router.get(
    "/v3/{project_id}/notifications/{notification_type}",
    name="listNotifications",
    summary="List notifications of one type (smn or fun), optionally one by notification_name",
    openapi_extra={
        "parameters": [
            {
                "name": "notification_name",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": "only the notification with this name",
            }
        ]
    },
)
async def list_notifications(
    project_id: str, notification_type: str, request: Request, services: ServicesDep, caller: Lister
) -> Response:
    name = request.query_params.get("notification_name") or None
    found = await services.db.read(
        lambda conn: repository.list_notifications(
            conn, project_id=project_id, notification_type=notification_type, notification_name=name
        )
    )
    return json_response({"notifications": found})
