"""LTS v2: the calls ``huaweicloudsdklts`` makes to read the streams trackers feed (``opencts.lts``).

- ``GET /v2/{project_id}/groups``: ``ListLogGroups``
- ``GET /v2/{project_id}/groups/{log_group_id}/streams``: ``ListLogStream``
- ``POST /v2/{project_id}/groups/{log_group_id}/streams/{log_stream_id}/content/query``: ``ListLogs``,
  a stream's records by time range and keywords (a read, though a POST: not self-audited)

Every call reads the caller's project only; another project's group or stream is a 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from opencts.api.auth import require
from opencts.api.bodies import json_body, json_response
from opencts.api.deps import ServicesDep
from opencts.iam.principal import Principal
from opencts.lts import query

router = APIRouter(tags=["lts"])
GroupReader = Annotated[Principal, Depends(require("lts:groups:list"))]
StreamReader = Annotated[Principal, Depends(require("lts:streams:list"))]
LogReader = Annotated[Principal, Depends(require("lts:logs:list"))]


class QueryLtsLogParams(BaseModel):
    """The SDK's ``QueryLtsLogParams``; :meth:`opencts.lts.query.LogQuery.from_params` checks the values."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start_time: str | int
    end_time: str | int
    labels: dict[str, Any] | None = None
    is_count: bool | None = None
    keywords: str | None = Field(None, max_length=1024)
    line_num: str | int | None = None
    time_: str | None = Field(None, alias="__time__")
    is_desc: bool | None = None
    scroll_id: str | None = None
    search_type: str | None = None
    limit: int | None = None
    highlight: bool | None = None
    is_iterative: bool | None = None
    query: str | None = None
    is_analysis_query: bool | None = None


@router.get("/v2/{project_id}/groups", name="listLogGroups", summary="The project's log groups")
async def list_log_groups(project_id: str, services: ServicesDep, caller: GroupReader) -> Response:
    groups = await services.db.read(lambda conn: query.list_groups(conn, project_id))
    return json_response({"log_groups": groups})


@router.get(
    "/v2/{project_id}/groups/{log_group_id}/streams", name="listLogStream", summary="A log group's streams"
)
async def list_log_stream(
    project_id: str, log_group_id: str, services: ServicesDep, caller: StreamReader
) -> Response:
    found = await services.db.read(lambda conn: query.list_streams(conn, project_id, log_group_id))
    return json_response({"log_streams": found})


@router.post(
    "/v2/{project_id}/groups/{log_group_id}/streams/{log_stream_id}/content/query",
    name="listLogs",
    summary="A stream's records by time range and keywords",
)
async def list_logs(
    project_id: str,
    log_group_id: str,
    log_stream_id: str,
    request: Request,
    services: ServicesDep,
    caller: LogReader,
) -> Response:
    body = await json_body(request, QueryLtsLogParams)
    q = query.LogQuery.from_params(body.model_dump(by_alias=True))
    page = await services.db.read(
        lambda conn: query.query_logs(conn, project_id, log_group_id, log_stream_id, q)
    )
    return json_response(page)
