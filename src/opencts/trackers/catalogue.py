"""The trace catalogue: which services, resource types and users each project's traces name.

ListTraceResources and ListUserResources must answer in milliseconds whatever the size of the log, so a
consumer of the log keeps two small tables up to date instead of the API scanning traces: one row per
(project, service, resource type) and per (project, user name), each with the last time it was seen.
The tables outlive trace retention on purpose: ListUserResources looks back 30 days, the log keeps 7.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select

from opencts.clock import DAY_MS, now_ms
from opencts.store import Database
from opencts.store.tables import projects, trace_resources, trace_users, traces
from opencts.store.upsert import upsert_greatest

RESOURCES_WINDOW_MS = 7 * DAY_MS
USERS_WINDOW_MS = 30 * DAY_MS


@dataclass(frozen=True, slots=True)
class Seen:
    """The newest ``record_time`` of each (project, service, resource type) and (project, user name)."""

    resources: dict[tuple[str, str, str], int]
    users: dict[tuple[str, str], int]


def seen_between(conn: Connection, first: int, last: int) -> Seen:
    """What the log rows with ``first <= seq <= last`` name, from their columns.

    The columns hold what the bodies say (ingest fills both from the same normalised trace, ``user_name``
    through :func:`~opencts.traces.model.user_name`), so the database can group a batch in one statement:
    no body is fetched or parsed, and no Python runs per row inside the writer's transaction. A row deleted
    by retention between the runner's read and this one is not seen; it had expired anyway.
    """
    in_batch = (traces.c.seq >= first, traces.c.seq <= last)
    newest = func.max(traces.c.record_time)
    resources: dict[tuple[str, str, str], int] = {}
    by_resource = (
        select(traces.c.project_id, traces.c.service_type, traces.c.resource_type, newest)
        .where(*in_batch)
        .group_by(traces.c.project_id, traces.c.service_type, traces.c.resource_type)
    )
    for project, service, resource, seen in conn.execute(by_resource):
        if service:
            key = (project, service[:64], (resource or "")[:128])  # NULL and "" are one key
            resources[key] = max(resources.get(key, 0), int(seen))
    users: dict[tuple[str, str], int] = {}
    by_user = (
        select(traces.c.project_id, traces.c.user_name, newest)
        .where(*in_batch, traces.c.user_name.is_not(None), traces.c.user_name != "")
        .group_by(traces.c.project_id, traces.c.user_name)
    )
    for project, name, seen in conn.execute(by_user):
        ukey = (project, name[:256])
        users[ukey] = max(users.get(ukey, 0), int(seen))
    return Seen(resources, users)


def record(conn: Connection, seen: Seen) -> None:
    """Fold what a batch named into the catalogue tables."""
    if seen.resources:
        upsert_greatest(
            conn,
            trace_resources,
            [
                {"project_id": p, "service_type": s, "resource_type": r, "last_seen": t}
                for (p, s, r), t in sorted(seen.resources.items())
            ],
            key=["project_id", "service_type", "resource_type"],
            column="last_seen",
        )
    if seen.users:
        upsert_greatest(
            conn,
            trace_users,
            [{"project_id": p, "user_name": u, "last_seen": t} for (p, u), t in sorted(seen.users.items())],
            key=["project_id", "user_name"],
            column="last_seen",
        )


class CatalogueConsumer:
    """Keeps ``trace_resources`` and ``trace_users`` current; idempotent, so at-least-once is enough.

    It reads columns, not bodies (``with_body = False``): the grouping happens on a reader, and the
    writer's transaction only upserts the few distinct keys a batch names.
    """

    name = "catalogue"
    batch_size = 2000
    wake_on_append = True
    with_body = False

    def __init__(self, db: Database, *, poll_seconds: float = 1.0) -> None:
        self.db = db
        self.poll_seconds = poll_seconds

    async def process(self, rows: list[Any]) -> int | None:
        first, last = rows[0].seq, rows[-1].seq  # the runner hands rows over in seq order
        seen = await self.db.read(lambda conn: seen_between(conn, first, last))
        if seen.resources or seen.users:
            await self.db.write(lambda conn: record(conn, seen))
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
