"""LTS sinks: a stream's records forwarded to syslog, OTLP/HTTP or signed HTTP NDJSON (``opencts.lts.sinks``).

- ``POST /v3/{project_id}/lts/groups/{log_group_id}/streams/{log_stream_id}/sinks``: add a sink
- ``GET  /v3/{project_id}/lts/groups/{log_group_id}/streams/{log_stream_id}/sinks``: a stream's sinks
- ``GET  /v3/{project_id}/lts/sinks``: the project's sinks; ``GET .../lts/sinks/{sink_id}``: one
- ``DELETE /v3/{project_id}/lts/sinks/{sink_id}``: remove a sink

A listing shows each sink's state (``ok``, ``lagging``, ``error``), its cursor, its lag in records and
seconds, and its last error; never a header value or a key, which are stored sealed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from opencts.api.auth import require
from opencts.api.bodies import json_body, json_response
from opencts.api.deps import ServicesDep
from opencts.clock import now_ms
from opencts.errors import BadRequest
from opencts.iam.principal import Principal
from opencts.lts.sinks import repository
from opencts.lts.sinks.model import CreateSinkBody, host_port
from opencts.smn.ssrf import EndpointRefused, check_url

router = APIRouter(tags=["lts"])
SinkCreator = Annotated[Principal, Depends(require("lts:sinks:create"))]
SinkReader = Annotated[Principal, Depends(require("lts:sinks:list"))]
SinkRemover = Annotated[Principal, Depends(require("lts:sinks:delete"))]
_STREAM = "/v3/{project_id}/lts/groups/{log_group_id}/streams/{log_stream_id}/sinks"


@router.post(_STREAM, name="createLtsSink", status_code=201, summary="Forward a log stream to a receiver")
async def create_sink(
    project_id: str,
    log_group_id: str,
    log_stream_id: str,
    request: Request,
    services: ServicesDep,
    caller: SinkCreator,
) -> Response:
    body = await json_body(request, CreateSinkBody)
    settings = services.settings
    if not (settings.allow_private_endpoints or settings.lts_sink_allow_private_endpoints):
        url = body.endpoint
        if body.sink_type == "syslog":
            host, port = host_port(body.endpoint)
            url = f"syslog://{host}:{port}"
        try:
            await check_url(url, allow_private=False)
        except EndpointRefused as exc:
            raise BadRequest(f"endpoint: {exc} (or OPENCTS_LTS_SINK_ALLOW_PRIVATE_ENDPOINTS=1)") from None
    now, box = now_ms(), services.box
    found = await services.db.write(
        lambda conn: repository.create(
            conn,
            project_id=project_id,
            group_id=log_group_id,
            stream_id=log_stream_id,
            body=body,
            box=box,
            now=now,
        )
    )
    return json_response(found, status=201)


@router.get(_STREAM, name="listLtsStreamSinks", summary="A log stream's sinks, with lag and errors")
async def list_stream_sinks(
    project_id: str, log_group_id: str, log_stream_id: str, services: ServicesDep, caller: SinkReader
) -> Response:
    now = now_ms()
    found = await services.db.read(
        lambda conn: repository.list_sinks(
            conn, project_id=project_id, group_id=log_group_id, stream_id=log_stream_id, now=now
        )
    )
    return json_response({"sinks": found})


@router.get("/v3/{project_id}/lts/sinks", name="listLtsSinks", summary="The project's sinks")
async def list_sinks(project_id: str, services: ServicesDep, caller: SinkReader) -> Response:
    now = now_ms()
    found = await services.db.read(lambda conn: repository.list_sinks(conn, project_id=project_id, now=now))
    return json_response({"sinks": found})


@router.get("/v3/{project_id}/lts/sinks/{sink_id}", name="showLtsSink", summary="One sink")
async def show_sink(project_id: str, sink_id: str, services: ServicesDep, caller: SinkReader) -> Response:
    now = now_ms()
    found = await services.db.read(
        lambda conn: repository.show(conn, project_id=project_id, sink_id=sink_id, now=now)
    )
    return json_response(found)


@router.delete(
    "/v3/{project_id}/lts/sinks/{sink_id}", name="deleteLtsSink", status_code=204, summary="Remove a sink"
)
async def delete_sink(project_id: str, sink_id: str, services: ServicesDep, caller: SinkRemover) -> Response:
    await services.db.write(lambda conn: repository.remove(conn, project_id=project_id, sink_id=sink_id))
    return Response(status_code=204)
