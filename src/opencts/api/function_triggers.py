"""FunctionGraph v2 function triggers, on the paths ``huaweicloudsdkfunctiongraph.v2`` calls (spec §4).

``/v2/{project_id}/fgs/triggers/{function_urn}`` creates (POST), lists (GET, a bare JSON array, which is
what ``ListFunctionTriggersResponse`` reads) and deletes all (DELETE); ``.../{trigger_type_code}/
{trigger_id}`` shows, updates and deletes one. A CTS trigger is a key event notification
(:mod:`opencts.functions.triggers`), so every change also invalidates the project's compiled matcher.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from opencts.api.auth import require
from opencts.api.bodies import json_body, json_response
from opencts.api.deps import Services, ServicesDep
from opencts.clock import now_ms
from opencts.functions import repository, triggers
from opencts.iam.principal import Principal

router = APIRouter(tags=["functiongraph"])

_BASE = "/v2/{project_id}/fgs/triggers/{function_urn}"
_ONE = _BASE + "/{trigger_type_code}/{trigger_id}"

Creator = Annotated[Principal, Depends(require("functiongraph:trigger:create"))]
Lister = Annotated[Principal, Depends(require("functiongraph:trigger:list"))]
Getter = Annotated[Principal, Depends(require("functiongraph:trigger:get"))]
Updater = Annotated[Principal, Depends(require("functiongraph:trigger:update"))]
Deleter = Annotated[Principal, Depends(require("functiongraph:trigger:delete"))]


def _changed(services: Services, project_id: str) -> None:
    services.matchers.invalidate(project_id)
    services.matchers.warm(services.db, project_id)


@router.post(_BASE, name="createFunctionTrigger", status_code=201, summary="Create a trigger (CTS)")
async def create_function_trigger(
    project_id: str, function_urn: str, request: Request, services: ServicesDep, caller: Creator
) -> Response:
    body = await json_body(request, triggers.CreateTriggerBody)
    now = now_ms()

    def run(conn: Connection) -> dict[str, Any]:
        function = repository.get_by_urn(conn, project_id, function_urn)
        return triggers.create(conn, function=function, body=body, now=now)

    made = await services.db.write(run)
    _changed(services, project_id)
    return json_response(made, 201)


@router.get(_BASE, name="listFunctionTriggers", summary="List a function's triggers (a bare JSON array)")
async def list_function_triggers(
    project_id: str, function_urn: str, services: ServicesDep, caller: Lister
) -> Response:
    def run(conn: Connection) -> list[dict[str, Any]]:
        function = repository.get_by_urn(conn, project_id, function_urn)
        return triggers.list_triggers(conn, function=function)

    return json_response(await services.db.read(run))


@router.delete(_BASE, name="batchDeleteFunctionTriggers", status_code=204, summary="Delete every trigger")
async def batch_delete_function_triggers(
    project_id: str, function_urn: str, services: ServicesDep, caller: Deleter
) -> Response:
    def run(conn: Connection) -> int:
        return triggers.delete_all(conn, function=repository.get_by_urn(conn, project_id, function_urn))

    await services.db.write(run)
    _changed(services, project_id)
    return Response(status_code=204)


@router.get(_ONE, name="showFunctionTrigger", summary="Show one trigger")
async def show_function_trigger(
    project_id: str,
    function_urn: str,
    trigger_type_code: str,
    trigger_id: str,
    services: ServicesDep,
    caller: Getter,
) -> Response:
    def run(conn: Connection) -> dict[str, Any]:
        function = repository.get_by_urn(conn, project_id, function_urn)
        return triggers.show(
            conn, function=function, trigger_type_code=trigger_type_code, trigger_id=trigger_id
        )

    return json_response(await services.db.read(run))


@router.put(_ONE, name="updateTrigger", summary="Enable or disable a trigger, or change its operations")
async def update_trigger(
    project_id: str,
    function_urn: str,
    trigger_type_code: str,
    trigger_id: str,
    request: Request,
    services: ServicesDep,
    caller: Updater,
) -> Response:
    body = await json_body(request, triggers.UpdateTriggerBody)
    now = now_ms()

    def run(conn: Connection) -> dict[str, Any]:
        function = repository.get_by_urn(conn, project_id, function_urn)
        return triggers.update_trigger(
            conn,
            function=function,
            trigger_type_code=trigger_type_code,
            trigger_id=trigger_id,
            body=body,
            now=now,
        )

    updated = await services.db.write(run)
    _changed(services, project_id)
    return json_response(updated)


@router.delete(_ONE, name="deleteFunctionTrigger", status_code=204, summary="Delete one trigger")
async def delete_function_trigger(
    project_id: str,
    function_urn: str,
    trigger_type_code: str,
    trigger_id: str,
    services: ServicesDep,
    caller: Deleter,
) -> Response:
    def run(conn: Connection) -> None:
        function = repository.get_by_urn(conn, project_id, function_urn)
        triggers.delete_trigger(
            conn, function=function, trigger_type_code=trigger_type_code, trigger_id=trigger_id
        )

    await services.db.write(run)
    _changed(services, project_id)
    return Response(status_code=204)
