"""What a project's trackers allow to be recorded.

In CTS a trace exists only because a tracker recorded it: with the management tracker deleted or
disabled nothing is recorded, a data trace belongs to one enabled data tracker, and the management
tracker's ``exclude_service: ["KMS"]`` hides KMS ``createDatakey`` (the noisiest event there is), and a
data tracker records only the object operations its ``data_event`` names (``READ``, ``WRITE``). Ingest
asks :meth:`RecordingPolicy.refuse` for every trace; :class:`PolicyCache` keeps that question off the
database for all but one request every couple of seconds per project.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from sqlalchemy import Connection

from opencts.store import Database
from opencts.trackers.model import DATA_EVENTS, SYSTEM_TRACKER
from opencts.trackers.repository import project_rows
from opencts.ttlcache import TtlCache

#: (service_type, trace_name) pairs hidden by ``exclude_service``; CTS documents only KMS createDatakey
EXCLUDED_OPERATIONS: dict[str, frozenset[str]] = {"KMS": frozenset({"createdatakey"})}
ALL_DATA_EVENTS = frozenset(DATA_EVENTS)
#: how a read-only OBS operation's trace name starts: the request's verb (``GET.OBJECT``, ``HEAD.OBJECT``,
#: the access-log form ``REST.GET.OBJECT``) or an SDK-style name (``getObject``, ``HeadObject``,
#: ``listObjects``, ``SelectObjectContent``)
_READ_PREFIXES = ("get", "head", "list", "options", "select")


def data_event(trace_name: str) -> str:
    """``READ`` or ``WRITE``: which of a data tracker's ``data_event`` values covers this operation.

    CTS: READ is "OBS object read operations", WRITE "OBS object write operations". Reads are the
    operations that change nothing (GET, HEAD, listing, OPTIONS, select); every other one (PUT, POST,
    DELETE, COPY, uploads, ACL and tag changes) writes.
    """
    name = trace_name.strip().lower()
    if name.startswith("rest."):
        name = name[5:]
    return "READ" if name.startswith(_READ_PREFIXES) else "WRITE"


@dataclass(frozen=True, slots=True)
class RecordingPolicy:
    """A snapshot of a project's trackers, reduced to what recording decisions need."""

    #: None when the project has no management tracker
    system_enabled: bool | None = None
    excluded_services: frozenset[str] = frozenset()
    #: data tracker name -> enabled
    data_trackers: dict[str, bool] = field(default_factory=dict)
    #: data tracker name -> the data_event values it records (both when its config names none)
    data_events: dict[str, frozenset[str]] = field(default_factory=dict)

    def refuse(self, *, kind: str, service_type: str, trace_name: str, tracker_name: str) -> str | None:
        """Why this trace must not be recorded, or None to record it.

        ``kind`` is ``system`` (management trace) or ``data``.
        """
        if kind == "data":
            enabled = self.data_trackers.get(tracker_name)
            if enabled is None:
                return f"data tracker {tracker_name!r} does not exist; data traces need a data tracker"
            if not enabled:
                return f"data tracker {tracker_name!r} is disabled; CTS records nothing for it"
            events = self.data_events.get(tracker_name, ALL_DATA_EVENTS)
            event = data_event(trace_name)
            if event not in events:
                return (
                    f"data tracker {tracker_name!r} records only {', '.join(sorted(events))} events"
                    f" (data_event); {trace_name} is a {event} operation"
                )
            return None
        if self.system_enabled is None:
            return "the management tracker 'system' does not exist; CTS records nothing"
        if not self.system_enabled:
            return "the management tracker is disabled; CTS records nothing"
        if service_type in self.excluded_services and trace_name.lower() in EXCLUDED_OPERATIONS.get(
            service_type, frozenset()
        ):
            return f"the management tracker excludes {service_type} {trace_name} (management_event_selector)"
        return None


def load_policy(conn: Connection, project_id: str) -> RecordingPolicy:
    system_enabled: bool | None = None
    excluded: frozenset[str] = frozenset()
    data: dict[str, bool] = {}
    events: dict[str, frozenset[str]] = {}
    for row in project_rows(conn, project_id):
        enabled = row.status == "enabled"
        if row.tracker_type == "system" and row.name == SYSTEM_TRACKER:
            system_enabled = enabled
            selector = orjson.loads(row.config).get("management_event_selector") or {}
            excluded = frozenset(selector.get("exclude_service", ()))
        elif row.tracker_type == "data":
            data[row.name] = enabled
            bucket = orjson.loads(row.config).get("data_bucket") or {}
            events[row.name] = frozenset(bucket.get("data_event") or ()) & ALL_DATA_EVENTS or ALL_DATA_EVENTS
    return RecordingPolicy(
        system_enabled=system_enabled, excluded_services=excluded, data_trackers=data, data_events=events
    )


class PolicyCache:
    """Per-project policies for ``ttl`` seconds. Tracker writes in this process call :meth:`invalidate`;
    other processes (a second server on the same PostgreSQL) see changes after at most ``ttl``.
    """

    def __init__(self, ttl: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._policies: TtlCache[str, RecordingPolicy] = TtlCache(ttl, clock)

    async def get(self, db: Database, project_id: str) -> RecordingPolicy:
        async def load(_stale: RecordingPolicy | None) -> RecordingPolicy:
            return await db.read(lambda conn: load_policy(conn, project_id))

        return await self._policies.get(project_id, load)

    def invalidate(self, project_id: str) -> None:
        self._policies.invalidate(project_id)
