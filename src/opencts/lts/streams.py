"""LTS log groups and streams: which stream each tracker's traces go to, and making them exist.

CTS transfers a tracker's traces to LTS when ``is_lts_enabled`` is on: into the log group ``CTS`` (made
once per project, then reused), stream ``system-trace`` for the management tracker and a stream named
after the tracker for a data tracker. The ids are uuid5 of the project and the names, so every node
(and the tracker's own rendering, ``group_id``/``stream_id`` in ListTrackers) computes the same ids
without asking the database, and making a group or stream twice is an insert that finds its row.

Turning LTS off stops the transfer; the stream and its records stay (as in CTS, where the stream is the
user's to delete in LTS).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, select

from opencts.store.tables import lts_groups, lts_streams, trackers
from opencts.store.upsert import insert_ignore

#: the log group CTS creates in LTS
GROUP_NAME = "CTS"
#: the management tracker's stream
SYSTEM_STREAM = "system-trace"
#: how long LTS keeps the group's records (LTS's default for a new group)
GROUP_TTL_DAYS = 7


def stream_name(tracker_type: str, tracker_name: str) -> str:
    """The stream a tracker's traces go to: ``system-trace``, or the data tracker's own name."""
    return SYSTEM_STREAM if tracker_type == "system" else tracker_name


def group_id(project_id: str) -> str:
    """The id of the project's ``CTS`` group (stable: ListTrackers shows it before any record exists)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"opencts:lts:{project_id}:{GROUP_NAME}"))


def stream_id(project_id: str, name: str) -> str:
    """The id of stream ``name`` in the project's ``CTS`` group."""
    return str(uuid.uuid5(uuid.UUID(group_id(project_id)), name))


def ensure_stream(
    conn: Connection, *, project_id: str, tracker_type: str, tracker_name: str, now: int
) -> str:
    """Create (or reuse) group ``CTS`` and the tracker's stream; return the stream's id.

    Runs in the tracker write's transaction, so a tracker never shows LTS enabled without its stream.
    """
    gid = group_id(project_id)
    insert_ignore(
        conn,
        lts_groups,
        {
            "id": gid,
            "project_id": project_id,
            "name": GROUP_NAME,
            "ttl_in_days": GROUP_TTL_DAYS,
            "creation_time": now,
        },
        key=["id"],
    )
    name = stream_name(tracker_type, tracker_name)
    sid = stream_id(project_id, name)
    insert_ignore(
        conn,
        lts_streams,
        {"id": sid, "group_id": gid, "project_id": project_id, "name": name, "creation_time": now},
        key=["id"],
    )
    return sid


#: which traces a stream takes: (project, ``system``, "") for the management tracker's, (project,
#: ``data``, tracker name) for a data tracker's
Route = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Routes:
    """Every tracker with LTS enabled, as the writer needs them: trace route -> stream id."""

    streams: dict[Route, str]

    @property
    def projects(self) -> frozenset[str]:
        return frozenset(project for project, _, _ in self.streams)

    def stream_of(self, project_id: str, kind: str, tracker_name: str) -> str | None:
        return self.streams.get((project_id, kind, "" if kind == "system" else tracker_name))


def _route(row: Any) -> tuple[Route, str] | None:
    if row.status != "enabled" or not orjson.loads(row.config).get("is_lts_enabled"):
        return None
    kind = "system" if row.tracker_type == "system" else "data"
    route = (row.project_id, kind, "" if kind == "system" else row.name)
    return route, stream_id(row.project_id, stream_name(row.tracker_type, row.name))


def routes(conn: Connection) -> Routes:
    """The streams that take traces now (trackers are few: all are read, LTS or not)."""
    rows: Iterable[Any] = conn.execute(
        select(
            trackers.c.project_id,
            trackers.c.name,
            trackers.c.tracker_type,
            trackers.c.status,
            trackers.c.config,
        )
    )
    return Routes(dict(r for r in map(_route, rows) if r is not None))
