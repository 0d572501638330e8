"""The transfer's status and its files (OpenCTS's own APIs; figures defined in ``archive.status``).

- ``GET /v3/{project_id}/archive/status[?tracker_name=T]``: per tracker with a bucket, how far the
  transfer is behind the log head (traces and seconds), what it wrote, its last error, the ledger's
  checkpoint and the digest chain's head
- ``GET /v3/{project_id}/archive/files?tracker_name=T[&day=YYYY-MM-DD][&marker=KEY][&limit=N]``: the
  tracker's written files in key order (key, traces, bytes, SHA-256), ``next_marker`` when more follow

Both read what the archive APIs read (``cts:archive:list``) and only the caller's project.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from opencts.api.auth import require
from opencts.api.bodies import json_response
from opencts.api.deps import ServicesDep
from opencts.archive import status
from opencts.clock import now_ms
from opencts.errors import BadRequest, NotFound
from opencts.iam.principal import Principal

router = APIRouter(tags=["archive"])
Reader = Annotated[Principal, Depends(require("cts:archive:list"))]
TrackerName = Annotated[str | None, Query(min_length=1, max_length=64)]

#: files one page lists at most
MAX_FILES = 1000


@router.get(
    "/v3/{project_id}/archive/status",
    name="showArchiveStatus",
    summary="Each tracker's transfer: lag behind the log head, files written, last error, ledger and digests",
)
async def show_status(
    project_id: str, services: ServicesDep, caller: Reader, tracker_name: TrackerName = None
) -> Response:
    now = now_ms()
    found = await services.db.read(
        lambda conn: status.tracker_statuses(conn, project_id, now=now, tracker_name=tracker_name)
    )
    if tracker_name is not None and not found:
        raise NotFound(f"tracker {tracker_name} does not exist or transfers to no bucket")
    return json_response({"trackers": [s.to_json() for s in found], "time": now})


def _day(text: str) -> int:
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise BadRequest(f"day {text!r} is not a date YYYY-MM-DD") from None
    return int(day.timestamp() * 1000)


@router.get(
    "/v3/{project_id}/archive/files",
    name="listArchiveFiles",
    summary="A tracker's written trace files (key, traces, bytes, SHA-256)",
)
async def list_files(
    project_id: str,
    services: ServicesDep,
    caller: Reader,
    tracker_name: Annotated[str, Query(min_length=1, max_length=64)],
    day: Annotated[str | None, Query(max_length=10)] = None,
    marker: Annotated[str | None, Query(max_length=1024)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_FILES)] = MAX_FILES,
) -> Response:
    day_ms = _day(day) if day is not None else None
    found = await services.db.read(
        lambda conn: status.written_files(
            conn, project_id, tracker_name, day_ms=day_ms, after_key=marker, limit=limit
        )
    )
    if found is None:
        raise NotFound(f"tracker {tracker_name} does not exist or transfers to no bucket")
    doc = {
        "files": [
            {
                "object_key": f.object_key,
                "bucket_name": f.bucket,
                "trace_count": f.trace_count,
                "size": f.size,
                "sha256": f.sha256,
                "first_seq": f.first_seq,
                "last_seq": f.last_seq,
                "oldest_time": f.oldest_time,
                "newest_time": f.newest_time,
                "written_at": f.written_at,
            }
            for f in found
        ],
        "next_marker": found[-1].object_key if len(found) == limit else None,
    }
    return json_response(doc)
