"""The trace catalogue: which services, resource types and users each project's traces name.

ListTraceResources and ListUserResources must answer in milliseconds whatever the size of the log, so a
consumer of the log keeps two small tables up to date instead of the API scanning traces: one row per
(project, service, resource type) and per (project, user name), each with the last time it was seen.
The tables outlive trace retention on purpose: ListUserResources looks back 30 days, the log keeps 7.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, Table, case, select
from sqlalchemy.dialects import postgresql, sqlite

from opencts.clock import now_ms
from opencts.store import Database
from opencts.store.tables import projects, trace_resources, trace_users
from opencts.traces.model import user_name

DAY_MS = 86_400_000
RESOURCES_WINDOW_MS = 7 * DAY_MS
USERS_WINDOW_MS = 30 * DAY_MS
_CHUNK = 500  # rows per upsert statement: well under SQLite's host-parameter limit


def _upsert(conn: Connection, table: Table, keys: list[str], rows: list[dict[str, Any]]) -> None:
    """Insert rows, or move ``last_seen`` forward (never back: a replayed batch changes nothing)."""
    insert: Any = postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)
    newer = case(
        (table.c.last_seen < insert.excluded.last_seen, insert.excluded.last_seen), else_=table.c.last_seen
    )
    stmt = insert.on_conflict_do_update(index_elements=keys, set_={"last_seen": newer})
    for start in range(0, len(rows), _CHUNK):
        conn.execute(stmt, rows[start : start + _CHUNK])


def record(conn: Connection, rows: list[Any]) -> None:
    """Fold log rows (``seq, project_id, record_time, body``) into the catalogue tables."""
    resources: dict[tuple[str, str, str], int] = {}
    users: dict[tuple[str, str], int] = {}
    for row in rows:
        try:
            body = orjson.loads(row.body)
        except orjson.JSONDecodeError:
            continue  # never written by ingest; skipping it beats blocking the catalogue forever
        if not isinstance(body, dict):
            continue
        seen = int(row.record_time)
        service = body.get("service_type")
        if isinstance(service, str) and service:
            resource = body.get("resource_type")
            key = (row.project_id, service[:64], resource[:128] if isinstance(resource, str) else "")
            resources[key] = max(resources.get(key, 0), seen)
        name = user_name(body)
        if name:
            ukey = (row.project_id, name[:256])
            users[ukey] = max(users.get(ukey, 0), seen)
    if resources:
        _upsert(
            conn,
            trace_resources,
            ["project_id", "service_type", "resource_type"],
            [
                {"project_id": p, "service_type": s, "resource_type": r, "last_seen": t}
                for (p, s, r), t in sorted(resources.items())
            ],
        )
    if users:
        _upsert(
            conn,
            trace_users,
            ["project_id", "user_name"],
            [{"project_id": p, "user_name": u, "last_seen": t} for (p, u), t in sorted(users.items())],
        )


class CatalogueConsumer:
    """Keeps ``trace_resources`` and ``trace_users`` current; idempotent, so at-least-once is enough."""

    name = "catalogue"
    batch_size = 2000
    wake_on_append = True
    with_body = True

    def __init__(self, db: Database, *, poll_seconds: float = 1.0) -> None:
        self.db = db
        self.poll_seconds = poll_seconds

    async def process(self, rows: list[Any]) -> int | None:
        await self.db.write(lambda conn: record(conn, rows))
        return None


def trace_resource_list(conn: Connection, *, domain_id: str, now: int | None = None) -> list[dict[str, Any]]:
    """ListTraceResources: services and their resource types seen in the account's projects, last 7 days."""
    since = (now if now is not None else now_ms()) - RESOURCES_WINDOW_MS
    stmt = (
        select(trace_resources.c.service_type, trace_resources.c.resource_type)
        .join(projects, projects.c.id == trace_resources.c.project_id)
        .where(projects.c.domain_id == domain_id, trace_resources.c.last_seen >= since)
        .distinct()
    )
    by_service: dict[str, set[str]] = {}
    for service, resource in conn.execute(stmt):
        types = by_service.setdefault(service, set())
        if resource:
            types.add(resource)
    return [{"service_type": s, "resource": sorted(by_service[s])} for s in sorted(by_service)]


def user_list(conn: Connection, *, project_id: str, now: int | None = None) -> list[dict[str, Any]]:
    """ListUserResources: users named by the project's traces in the last 30 days."""
    since = (now if now is not None else now_ms()) - USERS_WINDOW_MS
    stmt = (
        select(trace_users.c.user_name)
        .where(trace_users.c.project_id == project_id, trace_users.c.last_seen >= since)
        .order_by(trace_users.c.user_name)
    )
    return [{"name": name} for name in conn.execute(stmt).scalars()]
