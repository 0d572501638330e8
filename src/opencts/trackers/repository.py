"""Trackers and their tags in the database, and the tracker as CTS returns it (§2.3).

Every function takes a SQLAlchemy ``Connection`` and runs inside the caller's transaction, so a route does
one ``db.write`` and gets all-or-nothing. The ``config`` column holds the settings a caller sent, as sent
(after validation), so a tracker round-trips exactly; defaults are applied only when rendering.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import Connection, Row, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from opencts.archive import transfer_state
from opencts.clock import now_ms
from opencts.errors import BadRequest, Conflict, NotFound, QuotaExceeded
from opencts.iam.projects import lock_project
from opencts.lts import streams as lts_streams
from opencts.store.tables import projects, resource_tags, trackers
from opencts.traces import retention_hold
from opencts.trackers.model import (
    MAX_DATA_TRACKERS,
    MAX_SYSTEM_TRACKERS,
    SYSTEM_TRACKER,
    CreateTrackerRequestBody,
    Tag,
    UpdateTrackerRequestBody,
    check_config,
)

TAG_RESOURCE_TYPE = "cts-tracker"
MAX_TAGS = 20
LTS_GROUP = lts_streams.GROUP_NAME
#: notifications live elsewhere; their quota is reported here because ListQuotas names it
SMN_NOTIFICATION_QUOTA = 100


def _count(conn: Connection, project_id: str, tracker_type: str) -> int:
    stmt = (
        select(func.count())
        .select_from(trackers)
        .where(trackers.c.project_id == project_id, trackers.c.tracker_type == tracker_type)
    )
    return int(conn.execute(stmt).scalar_one())


def _insert(
    conn: Connection, *, project_id: str, name: str, tracker_type: str, config: dict[str, Any]
) -> str:
    tracker_id = str(uuid.uuid4())
    now = now_ms()
    try:
        with conn.begin_nested():
            conn.execute(
                insert(trackers).values(
                    id=tracker_id,
                    project_id=project_id,
                    name=name,
                    tracker_type=tracker_type,
                    status="enabled",
                    config=orjson.dumps(config).decode(),
                    create_time=now,
                    update_time=now,
                )
            )
    except IntegrityError:
        raise Conflict(f"tracker {name!r} already exists in project {project_id}") from None
    return tracker_id


def create_tracker(conn: Connection, *, project_id: str, body: CreateTrackerRequestBody) -> dict[str, Any]:
    """Create a tracker and return it as CreateTracker answers. Duplicate name: 409; quota: 400."""
    domain_id = lock_project(conn, project_id)
    if get_row(conn, project_id, body.tracker_name) is not None:
        what = "the management tracker" if body.tracker_type == "system" else "data tracker"
        raise Conflict(f"{what} {body.tracker_name!r} already exists in project {project_id}")
    limit = MAX_SYSTEM_TRACKERS if body.tracker_type == "system" else MAX_DATA_TRACKERS
    if _count(conn, project_id, body.tracker_type) >= limit:
        raise QuotaExceeded(
            f"a project may have at most {limit} {body.tracker_type} tracker(s); delete one to create another"
        )
    config = body.given()
    try:
        check_config(body.tracker_type, config)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if body.tracker_type == "data":
        config["data_bucket"].setdefault("data_event", ["READ", "WRITE"])
    name, tracker_type = body.tracker_name, body.tracker_type
    _insert(conn, project_id=project_id, name=name, tracker_type=tracker_type, config=config)
    _lts_stream(conn, project_id, tracker_type, name, config)
    row = get_row(conn, project_id, body.tracker_name)
    assert row is not None
    return render(row, domain_id)


def create_system_tracker(conn: Connection, *, project_id: str, domain_id: str) -> None:
    """Give a new project its management tracker, as "Enable CTS" does; a no-op if it has one.

    ``domain_id`` is the project's account. It is not stored (a tracker reads it from its project) but
    callers that create a project in the same transaction have it at hand, and it documents the intent.
    """
    del domain_id
    if get_row(conn, project_id, SYSTEM_TRACKER) is not None:
        return
    try:
        _insert(conn, project_id=project_id, name=SYSTEM_TRACKER, tracker_type="system", config={})
    except Conflict:
        return  # created concurrently: same outcome


def update_tracker(conn: Connection, *, project_id: str, body: UpdateTrackerRequestBody) -> None:
    """Apply the fields sent; fields not sent keep their value. ``obs_info`` merges field by field."""
    row = get_row(conn, project_id, body.tracker_name)
    if row is None or row.tracker_type != body.tracker_type:
        raise NotFound(
            f"{body.tracker_type} tracker {body.tracker_name!r} does not exist in project {project_id}"
        )
    config: dict[str, Any] = orjson.loads(row.config)
    for key, value in body.given().items():
        if key == "obs_info":
            config["obs_info"] = {**config.get("obs_info", {}), **value}
        elif key == "data_bucket":
            current = config.get("data_bucket", {})
            name = value.get("data_bucket_name")
            if body.tracker_type == "data" and name is not None and name != current.get("data_bucket_name"):
                raise BadRequest(
                    f"data_bucket.data_bucket_name cannot be changed after creation"
                    f" (tracker {body.tracker_name!r} records bucket {current.get('data_bucket_name')!r})"
                )
            config["data_bucket"] = {**current, **value}
        else:
            config[key] = value
    try:
        check_config(body.tracker_type, config)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    values: dict[str, Any] = {"config": orjson.dumps(config).decode(), "update_time": now_ms()}
    if body.status is not None:
        values["status"] = body.status
    conn.execute(update(trackers).where(trackers.c.id == row.id).values(**values))
    _lts_stream(conn, project_id, row.tracker_type, row.name, config)


def _lts_stream(
    conn: Connection, project_id: str, tracker_type: str, name: str, config: dict[str, Any]
) -> None:
    """With ``is_lts_enabled`` on, group ``CTS`` and the tracker's stream exist (made now, or reused)."""
    if config.get("is_lts_enabled"):
        now = now_ms()
        lts_streams.ensure_stream(
            conn, project_id=project_id, tracker_type=tracker_type, tracker_name=name, now=now
        )


def delete_trackers(
    conn: Connection, *, project_id: str, tracker_name: str | None = None, tracker_type: str | None = None
) -> int:
    """DeleteTracker: one tracker by name, or with no name every tracker of the type (default ``data``).

    Naming a tracker that does not exist is a 404; deleting "all data trackers" when there are none is
    not an error. The deleted trackers' tags go with them. Returns how many trackers were deleted.
    """
    tracker_type = tracker_type or "data"
    if tracker_type not in ("system", "data"):
        raise BadRequest(f"tracker_type must be system or data, not {tracker_type!r}")
    conds = [trackers.c.project_id == project_id, trackers.c.tracker_type == tracker_type]
    if tracker_name is not None:
        conds.append(trackers.c.name == tracker_name)
    ids = list(conn.execute(select(trackers.c.id).where(*conds)).scalars())
    if tracker_name is not None and not ids:
        raise NotFound(f"{tracker_type} tracker {tracker_name!r} does not exist in project {project_id}")
    if ids:
        conn.execute(
            delete(resource_tags).where(
                resource_tags.c.resource_type == TAG_RESOURCE_TYPE, resource_tags.c.resource_id.in_(ids)
            )
        )
        conn.execute(delete(trackers).where(trackers.c.id.in_(ids)))
    return len(ids)


def get_row(conn: Connection, project_id: str, name: str) -> Row[Any] | None:
    return conn.execute(
        select(trackers).where(trackers.c.project_id == project_id, trackers.c.name == name)
    ).first()


def project_rows(conn: Connection, project_id: str) -> list[Row[Any]]:
    """All of a project's trackers (for the recording policy)."""
    return list(conn.execute(select(trackers).where(trackers.c.project_id == project_id)))


def list_trackers(
    conn: Connection, *, project_id: str, tracker_name: str | None = None, tracker_type: str | None = None
) -> list[dict[str, Any]]:
    """ListTrackers: the management tracker first, then data trackers oldest first."""
    if tracker_type is not None and tracker_type not in ("system", "data"):
        raise BadRequest(f"tracker_type must be system or data, not {tracker_type!r}")
    stmt = (
        select(trackers, projects.c.domain_id)
        .join(projects, projects.c.id == trackers.c.project_id)
        .where(trackers.c.project_id == project_id)
    )
    if tracker_name is not None:
        stmt = stmt.where(trackers.c.name == tracker_name)
    if tracker_type is not None:
        stmt = stmt.where(trackers.c.tracker_type == tracker_type)
    rows = sorted(conn.execute(stmt), key=lambda r: (r.tracker_type != "system", r.create_time, r.name))
    failing = transfer_state.details(conn, [r.id for r in rows])
    # traces deleted before the archive took them outrank the transfer failure that held them
    failing = {**failing, **retention_hold.expired(conn, [r.id for r in rows])}
    return [render(r, r.domain_id, listing=True, transfer_detail=failing.get(r.id)) for r in rows]


def _lts_ids(project_id: str, stream: str) -> tuple[str, str]:
    """The ids of the tracker's LTS log group and stream (``opencts.lts.streams``: stable, computed)."""
    return lts_streams.group_id(project_id), lts_streams.stream_id(project_id, stream)


def render(
    row: Row[Any], domain_id: str, *, listing: bool = False, transfer_detail: str | None = None
) -> dict[str, Any]:
    """The tracker as CreateTracker (``listing=False``) or ListTrackers (``listing=True``) returns it.

    While its transfer fails, ``status`` is ``error`` with the ``detail`` (noBucket, bucketPolicyError,
    kmsKeyDisabled); the stored status, the user's enabled/disabled, comes back when the transfer recovers.
    """
    config: dict[str, Any] = orjson.loads(row.config)
    system = row.tracker_type == "system"
    obs = config.get("obs_info", {})
    bucket = obs.get("bucket_name") or ""
    lts_enabled = bool(config.get("is_lts_enabled", False))
    stream = "system-trace" if system else row.name
    out: dict[str, Any] = {
        "id": row.id,
        "create_time": int(row.create_time),
        "domain_id": domain_id,
        "project_id": row.project_id,
        "tracker_name": row.name,
        "tracker_type": row.tracker_type,
        "status": row.status,
        "lts": {
            "is_lts_enabled": lts_enabled,
            "log_group_name": LTS_GROUP if lts_enabled else None,
            "log_topic_name": stream if lts_enabled else None,
        },
        "obs_info": {
            "bucket_name": bucket,
            "file_prefix_name": obs.get("file_prefix_name", ""),
            "is_obs_created": bool(obs.get("is_obs_created", False)) and bool(bucket),
            "is_authorized_bucket": bool(bucket),
            "bucket_lifecycle": obs.get("bucket_lifecycle"),
            "compress_type": obs.get("compress_type", "gzip"),
            "is_sort_by_service": obs.get("is_sort_by_service", True),
        },
        "is_support_validate": bool(config.get("is_support_validate", False)),
        "is_support_trace_files_encryption": bool(config.get("is_support_trace_files_encryption", False)),
        "kms_id": config.get("kms_id"),
        "agency_name": config.get("agency_name"),
        "is_organization_tracker": bool(config.get("is_organization_tracker", False)),
    }
    if system:
        selector = config.get("management_event_selector", {})
        out["management_event_selector"] = {"exclude_service": list(selector.get("exclude_service", []))}
    else:
        data = config.get("data_bucket", {})
        out["data_bucket"] = {
            "data_bucket_name": data.get("data_bucket_name"),
            "search_enabled": True,  # OpenCTS lists data traces through ListTraces, unlike CTS
            "data_event": list(data.get("data_event", [])),
        }
    if transfer_detail is not None:
        out["status"], out["detail"] = "error", transfer_detail
    if listing and lts_enabled:
        out["group_id"], out["stream_id"] = _lts_ids(row.project_id, stream)
    return out


def quotas(conn: Connection, project_id: str, *, notifications_used: int = 0) -> list[dict[str, Any]]:
    """ListQuotas: used and allowed trackers (and key-event notifications) of the project."""
    return [
        {"type": "system_tracker", "used": _count(conn, project_id, "system"), "quota": MAX_SYSTEM_TRACKERS},
        {"type": "data_tracker", "used": _count(conn, project_id, "data"), "quota": MAX_DATA_TRACKERS},
        {"type": "smn_notification", "used": notifications_used, "quota": SMN_NOTIFICATION_QUOTA},
    ]


def _tag_target(conn: Connection, project_id: str, resource_type: str, resource_id: str) -> None:
    if resource_type != TAG_RESOURCE_TYPE:
        raise BadRequest(f"resource_type must be {TAG_RESOURCE_TYPE}, not {resource_type!r}")
    found = conn.execute(
        select(trackers.c.id).where(trackers.c.project_id == project_id, trackers.c.id == resource_id)
    ).first()
    if found is None:
        raise NotFound(f"tracker {resource_id} does not exist in project {project_id}")


def list_tags(conn: Connection, *, resource_id: str) -> dict[str, str]:
    rows = conn.execute(
        select(resource_tags.c.key, resource_tags.c.value).where(
            resource_tags.c.resource_type == TAG_RESOURCE_TYPE, resource_tags.c.resource_id == resource_id
        )
    )
    return {r.key: r.value for r in rows}


def add_tags(
    conn: Connection, *, project_id: str, resource_type: str, resource_id: str, tags: list[Tag]
) -> None:
    """Add tags, replacing the value of keys that exist. A tracker holds at most 20 tags."""
    _tag_target(conn, project_id, resource_type, resource_id)
    lock_project(conn, project_id)
    current = list_tags(conn, resource_id=resource_id)
    new_keys = {t.key for t in tags} - current.keys()
    if len(current) + len(new_keys) > MAX_TAGS:
        raise QuotaExceeded(
            f"a tracker holds at most {MAX_TAGS} tags; it has {len(current)} and this adds {len(new_keys)}"
        )
    for tag in tags:
        value = tag.value or ""
        where = (
            resource_tags.c.resource_type == TAG_RESOURCE_TYPE,
            resource_tags.c.resource_id == resource_id,
            resource_tags.c.key == tag.key,
        )
        if tag.key in current:
            conn.execute(update(resource_tags).where(*where).values(value=value))
        else:
            conn.execute(
                insert(resource_tags).values(
                    project_id=project_id,
                    resource_type=TAG_RESOURCE_TYPE,
                    resource_id=resource_id,
                    key=tag.key,
                    value=value,
                )
            )


def remove_tags(
    conn: Connection, *, project_id: str, resource_type: str, resource_id: str, tags: list[Tag]
) -> None:
    """Delete tags by key, or by key and value when a value is given. Absent tags are not an error."""
    _tag_target(conn, project_id, resource_type, resource_id)
    for tag in tags:
        conds = [
            resource_tags.c.resource_type == TAG_RESOURCE_TYPE,
            resource_tags.c.resource_id == resource_id,
            resource_tags.c.key == tag.key,
        ]
        if tag.value is not None:
            conds.append(resource_tags.c.value == tag.value)
        conn.execute(delete(resource_tags).where(*conds))
