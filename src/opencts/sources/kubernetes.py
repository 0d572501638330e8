"""Kubernetes audit events (``audit.k8s.io/v1`` ``EventList``) as CTS traces.

The API server's audit webhook backend (``--audit-webhook-config-file``) posts batches of events as an
``EventList``; every event of a request is posted once per stage its policy records (``RequestReceived``,
``ResponseStarted`` for long-running calls such as ``watch``, ``ResponseComplete``, ``Panic``), at the level
its policy rule gives it (``Metadata``; ``Request`` adds ``requestObject``; ``RequestResponse`` adds
``responseObject``). Each event becomes one trace whose id is ``auditID.stage``, so a batch the API server
sends again (it retries on any failure) is recorded once.

The whole batch is checked before any of it is stored: a malformed event is a 400 that names its index and
what is wrong, and nothing of the batch is kept, so the API server's retry is all or nothing too. The field
by field mapping is in ``docs/sources.md``.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from opencts.errors import BadRequest, MalformedJSON
from opencts.sources.fields import BadItem, time_ms
from opencts.traces.model import TRACE_ID_PATTERN, TRACE_NAME_PATTERN, is_ip_address

SERVICE_TYPE = "Kubernetes"
API_VERSION = "audit.k8s.io/v1"
LEVELS = ("Metadata", "Request", "RequestResponse")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
#: an API server batches at most 400 events by default (``--audit-webhook-batch-max-size``)
MAX_EVENTS = 1000
#: events at the RequestResponse level carry whole objects: a batch may be far larger than an ingest one
MAX_BODY_BYTES = 32 * 1024 * 1024
#: a request or response object larger than this is kept as its kind, name and size
MAX_OBJECT_BYTES = 256 * 1024
_READ_VERBS = frozenset({"get", "list", "watch", "head", "options"})

#: what every resource answers to (k8s.io/apiserver's request verbs)
_VERBS = ("create", "update", "patch", "delete", "deletecollection", "get", "list", "watch")
_RESOURCES = (
    "pods",
    "services",
    "endpoints",
    "configmaps",
    "secrets",
    "namespaces",
    "nodes",
    "persistentvolumes",
    "persistentvolumeclaims",
    "serviceaccounts",
    "events",
    "resourcequotas",
    "limitranges",
    "deployments",
    "replicasets",
    "statefulsets",
    "daemonsets",
    "jobs",
    "cronjobs",
    "ingresses",
    "networkpolicies",
    "roles",
    "rolebindings",
    "clusterroles",
    "clusterrolebindings",
    "customresourcedefinitions",
    "storageclasses",
    "leases",
    "horizontalpodautoscalers",
    "poddisruptionbudgets",
    "certificatesigningrequests",
    "validatingwebhookconfigurations",
    "mutatingwebhookconfigurations",
)
#: subresources people audit, with the verbs the API server reports for them
_SUBRESOURCES: dict[str, tuple[str, ...]] = {
    "pods/exec": ("create", "get"),
    "pods/attach": ("create", "get"),
    "pods/portforward": ("create", "get"),
    "pods/log": ("get",),
    "pods/eviction": ("create",),
    "pods/status": ("get", "update", "patch"),
    "deployments/scale": ("get", "update", "patch"),
    "statefulsets/scale": ("get", "update", "patch"),
    "serviceaccounts/token": ("create",),
    "certificatesigningrequests/approval": ("update", "patch"),
    "tokenreviews": ("create",),
    "subjectaccessreviews": ("create",),
    "selfsubjectaccessreviews": ("create",),
    "selfsubjectrulesreviews": ("create",),
}
#: requests to paths that are no resource (``/healthz``, ``/version``, ``/api``): the HTTP verb, lower-case
NON_RESOURCE = "nonResourceURL"
_NON_RESOURCE_VERBS = ("get", "post", "put", "patch", "delete", "head", "options")

#: service_type -> resource_type -> trace names, for the ListOperations catalogue
OPERATIONS: dict[str, dict[str, tuple[str, ...]]] = {
    SERVICE_TYPE: {
        **dict.fromkeys(_RESOURCES, _VERBS),
        **_SUBRESOURCES,
        NON_RESOURCE: _NON_RESOURCE_VERBS,
    }
}

_TRACE_ID = re.compile(TRACE_ID_PATTERN)
_TRACE_NAME = re.compile(TRACE_NAME_PATTERN)


def parse_event_list(raw: bytes) -> list[dict[str, Any]]:
    """The events of an ``EventList`` body, or a 400 that says what is wrong with the body."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedJSON(f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise MalformedJSON("request body must be an audit.k8s.io/v1 EventList object")
    if doc.get("kind") != "EventList" or doc.get("apiVersion") != API_VERSION:
        found = f"kind {str(doc.get('kind'))[:40]!r}, apiVersion {str(doc.get('apiVersion'))[:40]!r}"
        raise BadRequest(f"request body must be kind EventList, apiVersion {API_VERSION}; got {found}")
    items = doc.get("items")
    if items is None:
        return []  # an empty list is serialised without ``items`` (omitempty)
    if not isinstance(items, list):
        raise BadRequest("items must be a list of audit events")
    if len(items) > MAX_EVENTS:
        raise BadRequest(f"an EventList holds at most {MAX_EVENTS} events, this one has {len(items)}")
    return items


def to_traces(items: list[Any]) -> list[dict[str, Any]]:
    """Every event as a trace (in order), or a 400 naming the first malformed one: all or nothing."""
    traces = []
    for index, item in enumerate(items):
        try:
            traces.append(to_trace(item))
        except BadItem as exc:
            audit_id = item.get("auditID") if isinstance(item, dict) else None
            which = f"items[{index}]" + (f" (auditID {audit_id[:80]!r})" if isinstance(audit_id, str) else "")
            raise BadRequest(f"{which}: {exc}; nothing of the batch was stored") from None
    return traces


def _text(event: dict[str, Any], key: str) -> str:
    value = event.get(key)
    if not isinstance(value, str) or not value:
        raise BadItem(f"{key} must be a non-empty string")
    return value


def _object(parent: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadItem(f"{key} must be an object")
    return value


def rating_of(code: int | None, stage: str) -> str:
    """As OpenCTS rates its own calls: a denial (403), a server fault (5xx) or a panic is an incident,
    another failure a warning."""
    if stage == "Panic" or (code is not None and (code == 403 or code >= 500)):
        return "incident"
    if code is not None and code >= 400:
        return "warning"
    return "normal"


def _resource(event: dict[str, Any], uri: str) -> tuple[str, str | None, str | None, str | None]:
    """(resource_type, resource_name, resource_id, api_version) of an event."""
    ref = _object(event, "objectRef")
    if ref is None:  # /healthz, /version, /api...: no object, the path is what was asked for
        return NON_RESOURCE, uri.split("?", 1)[0][:256], None, None
    resource = ref.get("resource")
    if not isinstance(resource, str) or not resource:
        raise BadItem("objectRef.resource must be a non-empty string")
    sub = ref.get("subresource")
    resource_type = f"{resource}/{sub}" if isinstance(sub, str) and sub else resource
    name, namespace = ref.get("name"), ref.get("namespace")
    if not isinstance(name, str) or not name:
        name = None  # a list, a create with generateName, a deletecollection: no single object
    if isinstance(namespace, str) and namespace:
        name = f"{namespace}/{name}" if name else namespace
    uid = ref.get("uid")
    group, version = ref.get("apiGroup"), ref.get("apiVersion")
    api = None
    if isinstance(version, str) and version:
        api = f"{group}/{version}" if isinstance(group, str) and group else version
    return (
        resource_type[:128],
        name[:256] if name else None,
        uid if isinstance(uid, str) and uid else None,
        api,
    )


def _user(event: dict[str, Any]) -> dict[str, Any]:
    info = _object(event, "user")
    if info is None or not isinstance(info.get("username"), str):
        raise BadItem("user.username must be a string")
    name: str = info["username"]
    user: dict[str, Any] = {
        "name": name[:256],
        "type": "ServiceAccount" if name.startswith("system:serviceaccount:") else "User",
    }
    if isinstance(info.get("uid"), str) and info["uid"]:
        user["id"] = info["uid"][:256]
    return user


def to_trace(event: Any) -> dict[str, Any]:
    """One audit ``Event`` as a trace (the body ``POST /v3/{project_id}/traces`` takes)."""
    if not isinstance(event, dict):
        raise BadItem("each item must be an audit Event object")
    if event.get("kind", "Event") != "Event":
        raise BadItem(f"kind must be Event, not {str(event.get('kind'))[:40]!r}")
    level = event.get("level")
    if level not in LEVELS:
        raise BadItem(f"level must be one of {', '.join(LEVELS)}, not {str(level)[:40]!r}")
    stage = event.get("stage")
    if stage not in STAGES:
        raise BadItem(f"stage must be one of {', '.join(STAGES)}, not {str(stage)[:40]!r}")
    audit_id = _text(event, "auditID")
    trace_id = f"{audit_id}.{stage}"
    if not _TRACE_ID.fullmatch(trace_id):
        raise BadItem(f"auditID {str(audit_id)[:80]!r} is not an id (letters, digits, '.', '_', '-')")
    verb = _text(event, "verb")
    if not _TRACE_NAME.fullmatch(verb):
        raise BadItem(f"verb {str(verb)[:80]!r} is not a verb the API server uses")
    uri = _text(event, "requestURI")
    when = time_ms(event.get("requestReceivedTimestamp"), "requestReceivedTimestamp")
    ips = event.get("sourceIPs") or []
    if not isinstance(ips, list) or not all(isinstance(ip, str) and is_ip_address(ip) for ip in ips):
        raise BadItem("sourceIPs must be a list of IP addresses")
    status = _object(event, "responseStatus")
    code = None
    if status is not None:
        code = status.get("code")
        if code is not None and (type(code) is not int or not 100 <= code <= 599):
            raise BadItem(f"responseStatus.code must be an HTTP status, not {str(code)[:40]!r}")
    resource_type, resource_name, resource_id, api_version = _resource(event, uri)
    trace: dict[str, Any] = {
        "trace_id": trace_id,
        "trace_name": verb,
        "trace_type": "ApiCall",
        "trace_rating": rating_of(code, str(stage)),
        "service_type": SERVICE_TYPE,
        "resource_type": resource_type,
        "time": when,
        "user": _user(event),
        "request_id": audit_id,
        "resource_url": uri[:2048],
        "read_only": verb in _READ_VERBS,
        "message": _message(event, level, stage),
    }
    optional = {
        "resource_name": resource_name,
        "resource_id": resource_id,
        "api_version": api_version,
        "source_ip": ips[0] if ips else None,
        "code": None if code is None else str(code),
        "request": kept_object(event.get("requestObject")),
        "response": kept_object(event.get("responseObject")),
    }
    trace.update((k, v) for k, v in optional.items() if v is not None)
    return trace


def kept_object(value: Any) -> Any:
    """A ``requestObject``/``responseObject`` as stored: whole up to :data:`MAX_OBJECT_BYTES`, else what
    identifies it. A ``list`` at the RequestResponse level answers with every object of the collection;
    refusing it would make the API server resend, and finally drop, the whole batch."""
    if value is None:
        return None
    try:
        size = len(orjson.dumps(value))
    except orjson.JSONEncodeError:
        raise BadItem("requestObject/responseObject must be JSON") from None
    if size <= MAX_OBJECT_BYTES:
        return value
    summary: dict[str, Any] = {"truncated": f"{size} bytes, more than OpenCTS keeps ({MAX_OBJECT_BYTES})"}
    if isinstance(value, dict):
        summary.update({k: value[k] for k in ("kind", "apiVersion") if isinstance(value.get(k), str)})
        meta = value.get("metadata")
        if isinstance(meta, dict):
            ids = ("name", "namespace", "uid", "resourceVersion")
            summary["metadata"] = {k: meta[k] for k in ids if isinstance(meta.get(k), str | int)}
        if isinstance(value.get("items"), list):
            summary["items"] = len(value["items"])
    return summary


def _message(event: dict[str, Any], level: Any, stage: Any) -> dict[str, Any]:
    """What the trace's other fields cannot hold, kept as the event said it: the audit policy's level and
    stage, the client, impersonation, the response status's words and the annotations (the authorizer's
    decision and reason, admission plugins' notes)."""
    kept: dict[str, Any] = {"level": level, "stage": stage}
    for key in ("userAgent", "impersonatedUser", "annotations", "stageTimestamp"):
        if event.get(key) is not None:
            kept[key] = event[key]
    user = event.get("user")
    if isinstance(user, dict) and user.get("groups"):
        kept["groups"] = user["groups"]
    status = event.get("responseStatus")
    if isinstance(status, dict):
        kept["responseStatus"] = {k: v for k, v in status.items() if k in ("status", "reason", "message")}
    return kept
