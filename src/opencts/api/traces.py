"""``/v3/{project_id}/traces``: ingest (ours), ListTraces (CTS v3), export (ours)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from opencts.api.auth import require
from opencts.api.bodies import json_response
from opencts.api.deps import ServicesDep, read_body, require_json
from opencts.api.errors import request_id
from opencts.clock import now_ms
from opencts.errors import BadRequest
from opencts.iam.principal import Principal
from opencts.metrics.instruments import LIST_SECONDS_BY, filter_mix
from opencts.store import trace_log
from opencts.traces.export import export_csv, export_ndjson
from opencts.traces.ingest import MAX_BATCH_BYTES, summary
from opencts.traces.listing import list_traces, render
from opencts.traces.query import FILTER_PARAMS, parse_query
from opencts.traces.submitter import Submitter

router = APIRouter(tags=["traces"])
Producer = Annotated[Principal, Depends(require("cts:traces:put", replay_safe=True))]
Reader = Annotated[Principal, Depends(require("cts:traces:list"))]


def _param(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


_QUERY_DOC = [
    _param("trace_type", "system (management traces, default) or data"),
    _param("from", "start, ms since the epoch, exclusive (default one hour before to)", {"type": "integer"}),
    _param("to", "end, ms since the epoch, exclusive (default now)", {"type": "integer"}),
    _param("trace_id", "one trace; other filters are ignored"),
    *[_param(p, f"exact match on {p}") for p in FILTER_PARAMS],
]


@router.post(
    "/v3/{project_id}/traces", name="putTraces", summary="Append a batch of traces (idempotent by trace_id)"
)
async def put_traces(project_id: str, request: Request, services: ServicesDep, caller: Producer) -> Response:
    require_json(request)
    raw = await read_body(request, MAX_BATCH_BYTES)
    body = summary(await services.writer.write_body(project_id, raw, submitter=Submitter.of(caller)))
    status = 200
    if body["rejected"] == len(body["results"]):
        status = 400
        body = {
            "error_code": "CTS.0001",
            "error_msg": "no trace in the batch is valid",
            "request_id": request_id(request),
            **body,
        }
    return json_response(body, status)


@router.get(
    "/v3/{project_id}/traces",
    name="listTraces",
    summary="ListTraces: newest first, filtered, paged with next=marker",
    openapi_extra={
        "parameters": [
            *_QUERY_DOC,
            _param("limit", "1-200, default 10", {"type": "integer"}),
            _param("next", "the marker of the previous page"),
        ]
    },
)
async def get_traces(project_id: str, request: Request, services: ServicesDep, caller: Reader) -> Response:
    query = parse_query(request.query_params, now=now_ms(), retention_ms=services.settings.retention_ms)
    started = time.perf_counter()
    rows, marker = await services.db.read(
        lambda conn: list_traces(conn, project_id=project_id, query=query, index=services.db.term_index)
    )
    LIST_SECONDS_BY(filter_mix(query.trace_id, query.filters)).observe(time.perf_counter() - started)
    return Response(render(rows, marker), media_type="application/json")


@router.get(
    "/v3/{project_id}/traces/export",
    name="exportTraces",
    summary="Stream every matching trace as CSV or NDJSON (no row cap)",
    openapi_extra={"parameters": [*_QUERY_DOC, _param("format", "csv (default) or ndjson")]},
)
async def export_traces(project_id: str, request: Request, services: ServicesDep, caller: Reader) -> Response:
    fmt = request.query_params.get("format", "csv")
    if fmt not in ("csv", "ndjson"):
        raise BadRequest(f"format must be csv or ndjson, got {fmt!r}")
    now = now_ms()
    query = parse_query(
        request.query_params, now=now, retention_ms=services.settings.retention_ms, max_limit=None
    )
    read = services.db.read_sync
    if fmt == "csv":
        stream, media = export_csv(read, project_id, query, services.db.term_index), "text/csv; charset=utf-8"
    else:
        stream, media = export_ndjson(read, project_id, query, services.db.term_index), "application/x-ndjson"
    filename = f"traces-{query.kind}-{now}.{fmt}"
    return StreamingResponse(
        stream, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


@router.get(
    "/v3/{project_id}/traces/count",
    name="countTraces",
    summary="How many traces an export with the same parameters holds (for progress bars)",
    openapi_extra={"parameters": _QUERY_DOC},
)
async def count_traces(project_id: str, request: Request, services: ServicesDep, caller: Reader) -> Response:
    query = parse_query(
        request.query_params, now=now_ms(), retention_ms=services.settings.retention_ms, max_limit=None
    )
    found = await services.db.read(
        lambda conn: trace_log.count_matching(
            conn,
            project_id=project_id,
            kind=query.kind,
            time_from=query.time_from,
            time_to=query.time_to,
            filters=query.filters,
        )
    )
    return json_response({"count": found})
