"""OpenStack CADF notifications as CTS traces: the mapping, with no I/O (the consumer is ``cadf_consumer``).

OpenStack reports audit events in DMTF CADF (DSP0262), carried as oslo.messaging notifications: the AMQP
body is the envelope ``{"oslo.version": "2.0", "oslo.message": "<JSON text>"}`` whose message holds
``event_type``, ``publisher_id``, ``timestamp`` and the CADF event as ``payload``. Two producers matter:

- keystonemiddleware's audit filter, in front of any OpenStack API: ``audit.http.request`` (outcome
  ``pending``) and then ``audit.http.response`` for the same request with the *same* event id, carrying
  the outcome and the HTTP status as ``reason.reasonCode``. Only the response becomes a trace (it holds
  everything the request did, plus how it went); the request is acknowledged and dropped, so a trace id
  is never claimed by a half-told story.
- Keystone itself (``notification_format = cadf``): ``identity.authenticate`` (logins, outcome success or
  failure) and ``identity.<resource>.<created|updated|deleted|disabled>`` for users, projects, roles...

Service types follow what CTS shows for the OpenStack services Open Telekom Cloud runs (Nova is ECS,
Keystone is IAM, ...), so key event notifications and triggers set up for CTS pick OpenStack's traces,
and trace names follow CTS's (``login``, ``createServer``, ``deleteUser``). docs/sources-cadf.md has
every rule as a table; :data:`OPERATIONS` lists the traces for ListOperations.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from opencts.traces.model import TRACE_ID_PATTERN, TRACE_NAME_PATTERN, is_ip_address

CADF_EVENT_TYPE_URI = "http://schemas.dmtf.org/cloud/audit/1.0/event"
#: trace ids for CADF ids that are not usable as trace ids are uuid5 under this namespace (stable)
ID_NAMESPACE = uuid.UUID("6c0f3c52-9d4e-4d1f-8f0b-0c2f1d7c4a11")

#: CADF service typeURI prefixes (pycadf's audit maps, Keystone's observer) -> CTS service type; the
#: longest matching prefix wins, and an unknown ``service/NAME/...`` becomes ``NAME`` in upper case
SERVICE_TYPES: dict[str, str] = {
    "service/compute/baremetal": "BMS",
    "service/compute": "ECS",
    "service/network": "VPC",
    "service/storage/image": "IMS",
    "service/storage/block": "EVS",
    "service/storage/object": "OBS",
    "service/storage/object-store": "OBS",
    "service/orchestration": "RTS",
    "service/database": "RDS",
    "service/metric": "CES",
    "service/security/keymanager": "KMS",
    "service/security": "IAM",
    "service/identity": "IAM",
    "data/security": "IAM",
}
#: CADF actions -> the verb a CTS trace name starts with
VERBS = {
    "create": "create",
    "read": "get",
    "read/list": "list",
    "update": "update",
    "delete": "delete",
    "authenticate": "login",
    "authenticate/login": "login",
    "authenticate/logout": "logout",
    "created": "create",
    "updated": "update",
    "deleted": "delete",
    "disabled": "disable",
    "enabled": "enable",
}
#: Keystone's resource types (``identity.<type>.<operation>``) -> CTS resource type
IDENTITY_RESOURCES = {
    "OS-TRUST:trust": "trust",
    "OS-OAUTH1:access_token": "accessToken",
    "OS-OAUTH1:request_token": "requestToken",
    "OS-OAUTH1:consumer": "consumer",
    "application_credential": "applicationCredential",
    "role_assignment": "roleAssignment",
}
_UNKNOWN = {"unknown", "", None}


class NotCadf(ValueError):
    """A message on the topic that cannot be read as a CADF notification (dead-lettered, with this reason)."""


@dataclass(frozen=True, slots=True)
class Notification:
    """One oslo.messaging notification, unwrapped from its envelope."""

    event_type: str
    payload: Any
    publisher_id: str | None = None


@dataclass(frozen=True, slots=True)
class Mapped:
    """A CADF event as a trace: ``trace`` for ingest, and the OpenStack project it names (or None)."""

    trace: dict[str, Any]
    openstack_project: str | None


def unwrap(body: bytes) -> Notification:
    """The notification in an AMQP body: the 2.0 envelope, or a bare message (oslo's ``messaging`` v1
    driver); NotCadf when it is neither."""
    try:
        doc = orjson.loads(body)
        if isinstance(doc, dict) and "oslo.message" in doc:
            if doc.get("oslo.version") != "2.0":
                raise NotCadf(f"unsupported oslo.version {doc.get('oslo.version')!r}")
            doc = orjson.loads(doc["oslo.message"])
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise NotCadf(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("event_type"), str):
        raise NotCadf("not an oslo.messaging notification (no event_type)")
    publisher = doc.get("publisher_id")
    return Notification(
        doc["event_type"], doc.get("payload"), publisher if isinstance(publisher, str) else None
    )


def is_audit(event_type: str) -> bool:
    """Whether the event type is one this consumer records; others on a shared topic are skipped."""
    return event_type.startswith(("audit.http.", "identity."))


def map_notification(note: Notification) -> Mapped | None:
    """The trace of an audit notification; None for one that is deliberately not a trace (the pending
    ``audit.http.request``); NotCadf when the payload is not a usable CADF event."""
    if note.event_type == "audit.http.request":
        return None
    event = note.payload
    if not isinstance(event, dict) or event.get("typeURI") != CADF_EVENT_TYPE_URI:
        raise NotCadf(f"{note.event_type}: the payload is not a CADF event (no CADF typeURI)")
    for field in ("id", "eventTime", "action", "outcome"):
        if not isinstance(event.get(field), str) or not event[field]:
            raise NotCadf(f"{note.event_type}: the CADF event has no {field}")
    initiator = _obj(event.get("initiator"))
    target = _obj(event.get("target"))
    if note.event_type.startswith("identity."):
        resource = _identity_resource(note.event_type, event, initiator, target)
    else:
        resource = _http_resource(event, target)
    trace = _common(event, initiator, target, resource)
    project = _text(initiator.get("project_id")) or _text(target.get("project_id"))
    return Mapped(trace, project)


@dataclass(frozen=True, slots=True)
class _Resource:
    service_type: str
    resource_type: str | None
    resource_id: str | None
    resource_name: str | None
    trace_name: str


def _common(
    event: dict[str, Any], initiator: dict[str, Any], target: dict[str, Any], r: _Resource
) -> dict[str, Any]:
    code, rating = outcome_code(event, r.trace_name)
    trace: dict[str, Any] = {
        "trace_id": trace_id_of(event["id"]),
        "trace_name": r.trace_name,
        "trace_rating": rating,
        "trace_type": trace_type_of(initiator),
        "time": event_time_ms(event["eventTime"]),
        "service_type": r.service_type,
        "code": code,
        "request": orjson.dumps(_without_secrets(event)).decode(),
    }
    optional = {
        "resource_type": r.resource_type,
        "resource_id": _clip(r.resource_id, 350),
        "resource_name": _clip(r.resource_name, 256),
        "user": user_of(initiator),
        "source_ip": source_ip_of(initiator),
        "request_id": _clip(_text(initiator.get("request_id")), 256),
        "api_version": _api_version(event.get("requestPath")),
        "resource_url": _clip(_text(event.get("requestPath")), 2048),
        "endpoint": _clip(_public_address(target), 2048),
        "message": _reason_text(event.get("reason")),
    }
    trace.update({k: v for k, v in optional.items() if v})
    return trace


def trace_type_of(initiator: dict[str, Any]) -> str:
    """A user's request is an ``ApiCall``; a service acting on its own (an initiator typed as a service,
    not as an account) is a ``SystemAction``."""
    type_uri = str(initiator.get("typeURI", ""))
    return "SystemAction" if type_uri.startswith("service/") and "/account" not in type_uri else "ApiCall"


def _identity_resource(
    event_type: str, event: dict[str, Any], initiator: dict[str, Any], target: dict[str, Any]
) -> _Resource:
    """Keystone's own notifications: ``identity.authenticate`` and ``identity.<resource>.<operation>``."""
    parts = event_type.split(".")
    action = event["action"]
    if action.startswith("authenticate") or parts[1:2] == ["authenticate"]:
        verb = VERBS.get(action, "login")
        user_id = _text(initiator.get("user_id")) or _text(initiator.get("id"))
        return _Resource("IAM", "user", user_id, _text(initiator.get("name")), verb)
    if len(parts) >= 3:
        kind = ".".join(parts[1:-1])
        operation = parts[-1]
    else:  # identity.<something> with a CADF action such as "created.project"
        operation, _, kind = action.partition(".")
    rtype = IDENTITY_RESOURCES.get(kind) or _camel(kind)
    verb = VERBS.get(operation, _camel(operation))
    name = trace_name(verb, rtype[:1].upper() + rtype[1:])
    rid = _text(event.get("resource_info")) or _text(target.get("id"))
    return _Resource("IAM", rtype, rid, _text(target.get("name")), name)


def _http_resource(event: dict[str, Any], target: dict[str, Any]) -> _Resource:
    """keystonemiddleware's audit filter: the target is the service; the resource is named by the
    typeURI's path keywords (``service/compute/servers/server``) and the request path."""
    service, trail = split_type_uri(_text(target.get("typeURI")) or "")
    path = [p for p in (_text(event.get("requestPath")) or "").split("?")[0].split("/") if p]
    collection, rtype, resource_id = resource_in_path(trail, path)
    head, _, body_action = event["action"].partition("/")
    if head == "update" and body_action:  # POST .../action {"os-start": ...}
        verb = _camel(body_action.removeprefix("os-"))
    else:
        verb = VERBS.get(event["action"], _camel(head) or "call")
    noun = collection if verb == "list" else rtype
    name = trace_name(verb, _camel(noun, upper_first=True))
    return _Resource(service, rtype, resource_id, None, name)


#: path keywords that name no resource (keystonemiddleware's maps give them no singular)
_NOT_RESOURCES = frozenset({"action", "detail", "None"})


def resource_in_path(trail: list[str], path: list[str]) -> tuple[str | None, str | None, str | None]:
    """(collection, resource type, resource id) from a typeURI trail and the request path.

    keystonemiddleware writes a path keyword into the typeURI as it is (it appears in the path), and the
    segment after a keyword as the keyword's singular (which does not): ``/servers/abc/action`` gives
    ``servers/server/action``. So a trail word found in the path followed by one that is not is a
    collection whose item the path names, and the path segment after it is the resource id.
    """
    in_path = set(path)
    collection = rtype = rid = None
    for i, word in enumerate(trail):
        if word not in in_path or word in _NOT_RESOURCES:
            continue
        following = trail[i + 1] if i + 1 < len(trail) else None
        collection, rid = word, None
        if following is not None and following not in in_path and following not in _NOT_RESOURCES:
            rtype = following
            at = len(path) - 1 - path[::-1].index(word)
            rid = path[at + 1] if at + 1 < len(path) else None
        else:
            rtype = singular(word)
    return collection, rtype, rid


def split_type_uri(type_uri: str) -> tuple[str, list[str]]:
    """(CTS service type, the path keywords after the service) of a CADF typeURI (see
    :data:`SERVICE_TYPES`); an unknown ``service/NAME/...`` is the service ``NAME`` in upper case."""
    best = ""
    for prefix in SERVICE_TYPES:
        if (type_uri == prefix or type_uri.startswith(prefix + "/")) and len(prefix) > len(best):
            best = prefix
    if best:
        return SERVICE_TYPES[best], [p for p in type_uri[len(best) :].split("/") if p]
    parts = type_uri.split("/")
    if len(parts) > 1 and parts[0] == "service":
        name = re.sub(r"[^0-9A-Za-z_-]", "", parts[1]).upper()[:64]
        if name[:1].isalpha():
            return name, [p for p in parts[2:] if p]
    return "OPENSTACK", []


def outcome_code(event: dict[str, Any], name: str) -> tuple[str, str]:
    """(code, trace_rating): the HTTP status in ``reason.reasonCode`` when there is one, else one implied
    by the outcome; success is normal, a 4xx failure a warning, a 5xx or unknown outcome an incident."""
    outcome = event["outcome"]
    reason = _obj(event.get("reason"))
    given = _text(reason.get("reasonCode"))
    if given and given.isdigit() and len(given) == 3:
        code = given
    elif outcome == "success":
        code = "200"
    elif outcome == "failure":
        code = "401" if name in ("login", "logout") else "400"
    else:
        code = "500"
    if outcome == "success" and code < "400":
        return code, "normal"
    if code >= "500" or outcome not in ("success", "failure"):
        return code, "incident"
    return code, "warning"


def user_of(initiator: dict[str, Any]) -> dict[str, Any] | None:
    """The CTS ``user`` of a CADF initiator: id, name and domain, without the credential."""
    user_id = _text(initiator.get("user_id")) or _text(initiator.get("id"))
    name = _text(initiator.get("name")) or _text(initiator.get("username"))
    user: dict[str, Any] = {}
    if user_id:
        user["id"] = _clip(user_id, 256)
    if name:
        user["name"] = _clip(name, 256)
    domain = _text(initiator.get("domain_id"))
    if domain:
        user["domain"] = {"id": _clip(domain, 256)}
    if user and initiator.get("typeURI"):
        user["type"] = _clip(str(initiator["typeURI"]), 256)
    return user or None


def source_ip_of(initiator: dict[str, Any]) -> str | None:
    address = _text(_obj(initiator.get("host")).get("address"))
    return address if address and is_ip_address(address) else None


def trace_id_of(cadf_id: str) -> str:
    """The CADF event id when it is a valid trace id (pycadf's are UUIDs), else a stable uuid5 of it."""
    if re.fullmatch(TRACE_ID_PATTERN, cadf_id):
        return cadf_id
    return str(uuid.uuid5(ID_NAMESPACE, cadf_id))


def event_time_ms(text: str) -> int:
    """``2026-12-05T13:05:12.542672+0000`` (pycadf's form) or any ISO 8601 time, in ms since the epoch."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise NotCadf(f"eventTime {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise NotCadf(f"eventTime {text!r} has no time zone")
    return int(moment.timestamp() * 1000)


def trace_name(verb: str, noun: str) -> str:
    """``verb + Noun`` within CTS's trace-name grammar (a letter, then letters, digits, ``._-``; 64)."""
    name = re.sub(r"[^0-9A-Za-z._-]", "", f"{verb}{noun}")[:64]
    return name if re.fullmatch(TRACE_NAME_PATTERN, name) else "openstackEvent"


def singular(word: str) -> str:
    """``servers`` -> ``server``, ``policies`` -> ``policy``: enough for OpenStack's collection names."""
    if word.endswith("ies") and len(word) > 3:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _camel(text: str | None, *, upper_first: bool = False) -> str:
    words = [w for w in re.split(r"[^0-9A-Za-z]+", text or "") if w]
    if not words:
        return ""
    head = words[0][:1].upper() + words[0][1:] if upper_first else words[0][:1].lower() + words[0][1:]
    return head + "".join(w[:1].upper() + w[1:] for w in words[1:])


def _api_version(path: Any) -> str | None:
    first = next((p for p in str(path or "").split("?")[0].split("/") if p), "")
    return first if re.fullmatch(r"v\d+(\.\d+)?", first) else None


def _public_address(target: dict[str, Any]) -> str | None:
    for address in target.get("addresses") or ():
        if isinstance(address, dict) and address.get("name") == "public":
            url = _text(address.get("url"))
            return url if url and url.startswith(("http://", "https://")) else None
    return None


def _reason_text(reason: Any) -> str | None:
    r = _obj(reason)
    if not r:
        return None
    parts = [f"{k}={r[k]}" for k in ("reasonType", "reasonCode", "policyType", "policyId") if r.get(k)]
    return ", ".join(parts)[:4096] or None


def _without_secrets(event: dict[str, Any]) -> dict[str, Any]:
    """The CADF event as stored in ``request``: the initiator's credential (a masked token, still a
    token) and attachments (Keystone's partial password hashes) are left out."""
    out = {k: v for k, v in event.items() if k != "attachments"}
    initiator = out.get("initiator")
    if isinstance(initiator, dict):
        out["initiator"] = {k: v for k, v in initiator.items() if k != "credential"}
    return out


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value not in _UNKNOWN else None


def _clip(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else None


_CRUD = ("create", "update", "delete")


def _crud(noun: str, *extra: str) -> tuple[str, ...]:
    return (*(f"{verb}{noun}" for verb in _CRUD), *extra)


#: service_type -> resource_type -> trace names: what this source records, for ListOperations
OPERATIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "IAM": {
        "user": (*_crud("User"), "disableUser", "login", "logout"),
        "project": (*_crud("Project"), "disableProject"),
        "domain": (*_crud("Domain"), "disableDomain"),
        "group": _crud("Group"),
        "role": _crud("Role"),
        "roleAssignment": ("createRoleAssignment", "deleteRoleAssignment"),
        "region": _crud("Region"),
        "endpoint": _crud("Endpoint"),
        "service": _crud("Service"),
        "policy": _crud("Policy"),
        "trust": ("createTrust", "deleteTrust"),
        "applicationCredential": ("createApplicationCredential", "deleteApplicationCredential"),
    },
    "ECS": {
        "server": (
            *_crud("Server"),
            "getServer",
            "startServer",
            "stopServer",
            "rebootServer",
            "resizeServer",
            "rebuildServer",
            "createImageServer",
        ),
        "flavor": _crud("Flavor"),
        "keypair": ("createKeypair", "deleteKeypair"),
    },
    "VPC": {
        "network": _crud("Network"),
        "subnet": _crud("Subnet"),
        "port": _crud("Port"),
        "router": _crud("Router"),
        "floatingip": _crud("Floatingip"),
        "security-group": _crud("SecurityGroup"),
        "security-group-rule": ("createSecurityGroupRule", "deleteSecurityGroupRule"),
    },
    "EVS": {"volume": (*_crud("Volume"), "extendVolume"), "snapshot": _crud("Snapshot")},
    "IMS": {"image": (*_crud("Image"), "uploadImage")},
    "OBS": {"container": _crud("Container"), "object": _crud("Object")},
    "RTS": {"stack": _crud("Stack")},
}
