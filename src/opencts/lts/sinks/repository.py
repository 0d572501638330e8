"""Sinks in the database: made, listed (with their lag and error state) and removed per stream.

A new sink starts at its stream's end (records from now on), as an LTS trigger does: forwarding a week of
history to a SIEM nobody asked for would flood it. Secrets are sealed with the sink's id as associated data
(:func:`secret_context`), so a sealed value copied onto another sink does not open.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import Connection, delete, func, insert, select

from opencts.clock import iso_ms
from opencts.errors import BadRequest, Conflict, NotFound
from opencts.iam.secrets import SecretBox
from opencts.lts.sinks.model import MAX_SINKS_PER_STREAM, CreateSinkBody
from opencts.store.tables import lts_records, lts_sinks, lts_streams


def secret_context(sink_id: str) -> str:
    return f"lts-sink:{sink_id}"


def open_secrets(box: SecretBox, sink_id: str, sealed: str | None) -> dict[str, Any]:
    if not sealed:
        return {}
    found: dict[str, Any] = orjson.loads(box.open(sealed, context=secret_context(sink_id)))
    return found


def _stream(conn: Connection, project_id: str, group_id: str, stream_id: str) -> Any:
    row = conn.execute(
        select(lts_streams).where(
            lts_streams.c.id == stream_id,
            lts_streams.c.group_id == group_id,
            lts_streams.c.project_id == project_id,
        )
    ).first()
    if row is None:
        raise NotFound(
            f"log stream {stream_id} does not exist in log group {group_id} of project {project_id}"
        )
    return row


def create(
    conn: Connection,
    *,
    project_id: str,
    group_id: str,
    stream_id: str,
    body: CreateSinkBody,
    box: SecretBox,
    now: int,
) -> dict[str, Any]:
    _stream(conn, project_id, group_id, stream_id)
    s = lts_sinks.c
    names = [r.name for r in conn.execute(select(s.name).where(s.stream_id == stream_id))]
    if body.sink_name in names:
        raise Conflict(f"log stream {stream_id} already has a sink named {body.sink_name}")
    if len(names) >= MAX_SINKS_PER_STREAM:
        raise BadRequest(f"a log stream has at most {MAX_SINKS_PER_STREAM} sinks")
    sink_id = str(uuid.uuid4())
    secrets = body.secrets()
    sealed = box.seal(orjson.dumps(secrets), context=secret_context(sink_id)) if secrets else None
    end = conn.execute(
        select(func.max(lts_records.c.id)).where(lts_records.c.stream_id == stream_id)
    ).scalar()
    conn.execute(
        insert(lts_sinks).values(
            id=sink_id,
            project_id=project_id,
            group_id=group_id,
            stream_id=stream_id,
            name=body.sink_name,
            sink_type=body.sink_type,
            endpoint=body.endpoint,
            settings=orjson.dumps(body.settings()).decode(),
            secrets=sealed,
            filter=orjson.dumps(body.records_filter.config()).decode(),
            position=int(end or 0),
            delivered=0,
            lease_owner=None,
            lease_until=0,
            attempts=0,
            next_attempt_at=0,
            last_error=None,
            last_error_at=None,
            last_delivered_at=None,
            created_at=now,
            updated_at=now,
        )
    )
    return show(conn, project_id=project_id, sink_id=sink_id, now=now)


def _lag(conn: Connection, row: Any, now: int) -> tuple[int, float]:
    r = lts_records.c
    behind = conn.execute(
        select(func.count()).where(r.stream_id == row.stream_id, r.id > row.position)
    ).scalar_one()
    oldest = conn.execute(
        select(r.record_time).where(r.stream_id == row.stream_id, r.id > row.position).order_by(r.id).limit(1)
    ).scalar()
    return int(behind), 0.0 if oldest is None else max(0.0, (now - int(oldest)) / 1000)


def render(conn: Connection, row: Any, now: int) -> dict[str, Any]:
    """A sink as the API shows it: its settings (no secret), its cursor, its lag and its last error."""
    settings = orjson.loads(row.settings)
    behind, seconds = _lag(conn, row, now)
    state = "error" if row.attempts else ("lagging" if behind else "ok")
    return {
        "sink_id": row.id,
        "sink_name": row.name,
        "sink_type": row.sink_type,
        "endpoint": row.endpoint,
        "log_group_id": row.group_id,
        "log_stream_id": row.stream_id,
        "tls": settings["tls"],
        "server_name": settings["server_name"],
        "has_ca_cert": bool(settings["ca_cert"]),
        "has_client_cert": bool(settings["client_cert"]),
        "header_names": settings["header_names"],
        "app_name": settings["app_name"],
        "facility": settings["facility"],
        "batch_size": settings["batch_size"],
        "records_filter": orjson.loads(row.filter),
        "state": state,
        "position": int(row.position),
        "delivered": int(row.delivered),
        "lag_records": behind,
        "lag_seconds": round(seconds, 3),
        "failures_in_a_row": int(row.attempts),
        "next_attempt_time": iso_ms(int(row.next_attempt_at)) if row.attempts else None,
        "last_error": row.last_error,
        "last_error_time": iso_ms(int(row.last_error_at)) if row.last_error_at else None,
        "last_delivered_time": iso_ms(int(row.last_delivered_at)) if row.last_delivered_at else None,
        "created_time": iso_ms(int(row.created_at)),
    }


def list_sinks(
    conn: Connection, *, project_id: str, now: int, group_id: str | None = None, stream_id: str | None = None
) -> list[dict[str, Any]]:
    if stream_id is not None:
        _stream(conn, project_id, group_id or "", stream_id)
    s = lts_sinks.c
    stmt = select(lts_sinks).where(s.project_id == project_id)
    if stream_id is not None:
        stmt = stmt.where(s.stream_id == stream_id)
    return [render(conn, r, now) for r in conn.execute(stmt.order_by(s.created_at, s.id))]


def _find(conn: Connection, project_id: str, sink_id: str) -> Any:
    row = conn.execute(
        select(lts_sinks).where(lts_sinks.c.id == sink_id, lts_sinks.c.project_id == project_id)
    ).first()
    if row is None:
        raise NotFound(f"project {project_id} has no LTS sink {sink_id}")
    return row


def show(conn: Connection, *, project_id: str, sink_id: str, now: int) -> dict[str, Any]:
    return render(conn, _find(conn, project_id, sink_id), now)


def remove(conn: Connection, *, project_id: str, sink_id: str) -> None:
    _find(conn, project_id, sink_id)
    conn.execute(delete(lts_sinks).where(lts_sinks.c.id == sink_id))
