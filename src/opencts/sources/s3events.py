"""S3-style bucket notifications (MinIO, Ceph RGW webhook targets) as OBS data-event traces.

A bucket notification is the S3 event message: ``{"Records": [...]}``, one record per object operation
(MinIO's webhook wraps it as ``{"EventName": ..., "Key": "bucket/key", "Records": [...]}``). Each record
of an object event becomes one data trace on every enabled data tracker of the project whose
``data_bucket.data_bucket_name`` is the record's bucket and whose ``data_event`` covers it: ``READ`` for
``s3:ObjectAccessed:*``, ``WRITE`` for ``s3:ObjectCreated:*`` and ``s3:ObjectRemoved:*``. Other events
(replication, restore, lifecycle, bucket events) are counted as ignored. A record no tracker wants
records nothing, which is not an error: the store sends what its configuration says, CTS keeps what the
trackers ask for, exactly as for OBS.

The trace id is a hash of the tracker, bucket, key, event name and the record's ``sequencer`` (which
orders the events of one key), so a notification sent again is recorded once. The field by field
mapping is in ``docs/sources.md``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import orjson
from sqlalchemy import Connection

from opencts.errors import BadRequest, MalformedJSON
from opencts.sources.fields import BadItem, time_ms
from opencts.traces.model import is_ip_address
from opencts.trackers.repository import project_rows

SERVICE_TYPE = "OBS"
RESOURCE_TYPE = "object"

#: S3 event name (without the ``s3:`` prefix) -> the OBS operation name its trace carries
TRACE_NAMES: dict[str, str] = {
    "ObjectCreated:Put": "PUT.OBJECT",
    "ObjectCreated:Post": "POST.OBJECT",
    "ObjectCreated:Copy": "COPY.OBJECT",
    "ObjectCreated:CompleteMultipartUpload": "POST.UPLOAD",
    "ObjectCreated:PutRetention": "PUT.OBJECT_RETENTION",
    "ObjectCreated:PutLegalHold": "PUT.OBJECT_LEGALHOLD",
    "ObjectCreated:PutTagging": "PUT.OBJECT_TAGGING",
    "ObjectCreated:DeleteTagging": "DELETE.OBJECT_TAGGING",
    "ObjectRemoved:Delete": "DELETE.OBJECT",
    "ObjectRemoved:DeleteMarkerCreated": "DELETE.OBJECT",
    "ObjectAccessed:Get": "GET.OBJECT",
    "ObjectAccessed:Head": "HEAD.OBJECT",
    "ObjectAccessed:GetRetention": "GET.OBJECT_RETENTION",
    "ObjectAccessed:GetLegalHold": "GET.OBJECT_LEGALHOLD",
    "ObjectAccessed:Attributes": "GET.OBJECT_ATTRIBUTES",
}

#: service_type -> resource_type -> trace names, for the ListOperations catalogue
OPERATIONS: dict[str, dict[str, tuple[str, ...]]] = {
    SERVICE_TYPE: {RESOURCE_TYPE: tuple(dict.fromkeys(TRACE_NAMES.values()))}
}

#: what an event of each category is, when its name is not one :data:`TRACE_NAMES` knows
_CATEGORIES: dict[str, tuple[str, str]] = {
    "ObjectCreated": ("WRITE", "PUT.OBJECT"),
    "ObjectRemoved": ("WRITE", "DELETE.OBJECT"),
    "ObjectAccessed": ("READ", "GET.OBJECT"),
}
MAX_RECORDS = 1000
MAX_BODY_BYTES = 5 * 1024 * 1024
_TRACE_ID_PREFIX = "s3-"
_PRINTABLE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class DataTracker:
    """An enabled data tracker, as bucket events need it."""

    name: str
    bucket: str
    events: frozenset[str]


@dataclass(frozen=True, slots=True)
class Mapped:
    """The traces of a notification; ``record_of[i]`` is the index of the record trace ``i`` came from."""

    traces: list[dict[str, Any]]
    record_of: list[int]
    ignored: int


def data_trackers(conn: Connection, project_id: str) -> list[DataTracker]:
    """The project's enabled data trackers (a disabled one records nothing, as in CTS)."""
    found = []
    for row in project_rows(conn, project_id):
        if row.tracker_type != "data" or row.status != "enabled":
            continue
        bucket = orjson.loads(row.config).get("data_bucket") or {}
        events = frozenset(bucket.get("data_event") or ("READ", "WRITE"))
        if bucket.get("data_bucket_name"):
            found.append(DataTracker(row.name, bucket["data_bucket_name"], events))
    return found


def parse_notification(raw: bytes) -> list[Any]:
    """The ``Records`` of a bucket notification, or a 400 that says what is wrong with the body."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedJSON(f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("Records"), list):
        raise MalformedJSON('request body must be an S3 event notification {"Records": [...]}')
    records: list[Any] = doc["Records"]
    if len(records) > MAX_RECORDS:
        raise BadRequest(f"a notification holds at most {MAX_RECORDS} records, this one has {len(records)}")
    return records


def event_of(event_name: str) -> tuple[str, str] | None:
    """(READ or WRITE, trace name) of an S3 event name (``s3:`` prefix or not), None if no object event."""
    name = event_name.removeprefix("s3:")
    category = name.split(":", 1)[0]
    if category not in _CATEGORIES:
        return None
    kind, fallback = _CATEGORIES[category]
    return kind, TRACE_NAMES.get(name, fallback)


def to_traces(records: list[Any], trackers: list[DataTracker]) -> Mapped:
    """Every record's traces, or a 400 naming the first malformed record: all or nothing."""
    traces: list[dict[str, Any]] = []
    record_of: list[int] = []
    ignored = 0
    for index, record in enumerate(records):
        try:
            made = record_traces(record, trackers)
        except BadItem as exc:
            raise BadRequest(f"Records[{index}]: {exc}; nothing of the notification was stored") from None
        if made is None:
            ignored += 1
            continue
        traces.extend(made)
        record_of.extend([index] * len(made))
    return Mapped(traces, record_of, ignored)


def _field(parent: Any, path: str) -> Any:
    value = parent
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _string(record: dict[str, Any], path: str) -> str:
    value = _field(record, path)
    if not isinstance(value, str) or not value:
        raise BadItem(f"{path} must be a non-empty string")
    return value


def trace_id(tracker: str, bucket: str, key: str, event_name: str, sequencer: str) -> str:
    """Stable across deliveries of one event, distinct per tracker (each records its own trace)."""
    digest = hashlib.sha256("\x00".join((tracker, bucket, key, event_name, sequencer)).encode())
    return _TRACE_ID_PREFIX + digest.hexdigest()[:48]


def record_traces(record: Any, trackers: list[DataTracker]) -> list[dict[str, Any]] | None:
    """The traces of one record (one per matching tracker), or None if it is no object event."""
    if not isinstance(record, dict):
        raise BadItem("each record must be an object")
    event_name = _string(record, "eventName")
    found = event_of(event_name)
    if found is None:
        return None
    kind, trace_name = found
    bucket = _string(record, "s3.bucket.name")
    raw_key = _string(record, "s3.object.key")
    key = unquote_plus(raw_key)  # S3 sends the key URL-encoded, spaces as '+'
    when = time_ms(_string(record, "eventTime"), "eventTime", "ISO 8601")
    obj = _field(record, "s3.object") or {}
    sequencer = obj.get("sequencer")
    if not isinstance(sequencer, str) or not sequencer:  # not every store sends one: what else is unique
        sequencer = f"{record['eventTime']}/{obj.get('versionId') or ''}/{obj.get('eTag') or ''}"
    matching = [t for t in trackers if t.bucket == bucket and kind in t.events]
    if not matching:
        return []
    base: dict[str, Any] = {
        "trace_name": trace_name,
        "trace_type": "ObsAPI",
        "trace_rating": "normal",
        "service_type": SERVICE_TYPE,
        "resource_type": RESOURCE_TYPE,
        "resource_name": f"{bucket}/{key}"[:256],
        "time": when,
        "read_only": kind == "READ",
        "request": record,
        "message": event_name if event_name.startswith("s3:") else f"s3:{event_name}",
    }
    principal = _field(record, "userIdentity.principalId")
    if isinstance(principal, str) and principal:
        base["user"] = {"name": principal[:256], "type": "User"}
    ip = _field(record, "requestParameters.sourceIPAddress")
    if isinstance(ip, str) and is_ip_address(ip):
        base["source_ip"] = ip
    version = obj.get("versionId")
    if isinstance(version, str) and version and not _PRINTABLE.search(version):
        base["resource_id"] = version[:350]
    request_id = _field(record, "responseElements.x-amz-request-id")
    if isinstance(request_id, str) and request_id:
        base["request_id"] = request_id[:256]
    endpoint = _field(record, "responseElements.x-minio-origin-endpoint")
    if isinstance(endpoint, str) and endpoint:
        base["endpoint"] = endpoint[:2048]
    return [
        {
            **base,
            "trace_id": trace_id(t.name, bucket, key, event_name.removeprefix("s3:"), sequencer),
            "tracker_name": t.name,
        }
        for t in matching
    ]
