"""``POST /v3/{project_id}/archive/query``: SQL over the project's archived trace files (OpenCTS's own API).

The project's trackers with a bucket are the only sources, and only files whose name carries the project
are read (``archive.query.pick_files``). The SQL runs sandboxed: one SELECT, no file or network access,
at most :data:`MAX_ROWS` rows and ``OPENCTS_ARCHIVE_QUERY_TIMEOUT`` seconds (loading included; past it a
408 ``CTS.0408``); bad SQL is a 400 with DuckDB's message.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from opencts.api.auth import require
from opencts.api.bodies import json_body, json_response
from opencts.api.deps import Services, ServicesDep
from opencts.archive import planner, query
from opencts.archive.envelope import EnvelopeHeader
from opencts.clock import DAY_MS, now_ms
from opencts.errors import BadRequest, NotFound, OpenCTSError
from opencts.iam.principal import Principal

router = APIRouter(tags=["archive"])

#: rows one answer holds at most (``truncated`` says when more matched)
MAX_ROWS = 10_000
#: the range when ``from`` is not given: the 30 days before ``to``
DEFAULT_DAYS = 30

Reader = Annotated[Principal, Depends(require("cts:archive:list"))]


class ArchiveQueryBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    sql: str = Field(min_length=1, max_length=100_000)
    tracker_name: str | None = Field(default=None, max_length=64)
    from_: int | None = Field(default=None, alias="from", ge=0, description="ms since the epoch (inclusive)")
    to: int | None = Field(default=None, ge=0, description="ms since the epoch (exclusive); default now")
    limit: int = Field(default=1000, ge=1, le=MAX_ROWS)


@router.post(
    "/v3/{project_id}/archive/query",
    name="queryArchive",
    summary="Run SQL (DuckDB) over the project's archived trace files",
)
async def query_archive(project_id: str, request: Request, services: ServicesDep, caller: Reader) -> Response:
    body = await json_body(request, ArchiveQueryBody)
    answer = await run_query(services, project_id, body)
    doc: dict[str, Any] = {
        "columns": answer.columns,
        "rows": answer.rows,
        "truncated": answer.truncated,
        "files": answer.files,
    }
    return json_response(doc)


async def run_query(services: Services, project_id: str, body: ArchiveQueryBody) -> query.Answer:
    """The query of ``body`` over the project's archive, sandboxed; the API and the console run it here."""
    end = body.to if body.to is not None else now_ms() + 1
    start = body.from_ if body.from_ is not None else end - DEFAULT_DAYS * DAY_MS
    if start >= end:
        raise BadRequest("from must be before to")
    found = await services.db.read(planner.targets)
    sources = query.pick_sources(found, project_id=project_id, tracker=body.tracker_name)
    if body.tracker_name is not None and not sources:
        raise NotFound(f"tracker {body.tracker_name} does not exist or transfers to no bucket")
    store = services.storage
    if store is None:
        raise OpenCTSError("the object store is not open")
    keys = services.kms

    def unwrap(owner: str, header: EnvelopeHeader) -> bytes:
        assert keys is not None
        return keys.unwrap(owner, header)

    return await asyncio.to_thread(
        query.answer,
        store,
        sources,
        sql=body.sql,
        region=services.settings.region,
        start_ms=start,
        end_ms=end,
        late_ms=services.settings.retention_ms + DAY_MS,
        unwrap=unwrap if keys is not None else None,
        limit=body.limit,
        timeout=services.settings.archive_query_timeout,
    )
