"""CloudTrail log files (``{"Records": [event, ...]}``) as CTS management traces.

Every CloudTrail event becomes one management trace (tracker ``system``) whose id is the ``eventID``, so
importing the same files again adds nothing. CloudTrail's data events (S3 object reads and writes) are
imported as management traces too: an import has no data tracker to hold them, and the trace keeps
``eventCategory`` in its ``request``. The whole rule set is the table in docs/sources-imports.md.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import orjson

from opencts.importers.files import ImportFileError
from opencts.sources.cadf import event_time_ms
from opencts.traces.model import TRACE_ID_PATTERN, TRACE_NAME_PATTERN, is_ip_address

#: trace ids for events without a usable ``eventID`` are uuid5 of the event under this namespace
ID_NAMESPACE = uuid.UUID("2f7e9d8a-1b6c-4e2a-9c5d-7a3b8e0f6d21")
#: CloudTrail's eventType -> CTS trace_type
TRACE_TYPES = {
    "AwsApiCall": "ApiCall",
    "AwsConsoleAction": "ConsoleAction",
    "AwsConsoleSignIn": "ConsoleAction",
    "AwsServiceEvent": "SystemAction",
}
#: errorCode patterns -> HTTP status (CloudTrail records the service's error code, not the status)
ERROR_STATUS = (
    (re.compile(r"AccessDenied|Unauthorized|Forbidden|NotAuthorized|SignatureDoesNotMatch"), "403"),
    (re.compile(r"NotFound|NoSuch|NonExistent|DoesNotExist"), "404"),
    (re.compile(r"AlreadyExists|Conflict|InUse|AlreadyOwned|NotEmpty"), "409"),
    (re.compile(r"Throttl|TooManyRequests|RequestLimitExceeded|SlowDown|LimitExceeded"), "429"),
    (re.compile(r"ServiceUnavailable|Unavailable"), "503"),
    (re.compile(r"InternalError|InternalFailure|ServerException|InternalServer"), "500"),
)
#: requestParameters keys that name the resource when the event lists no ``resources``
RESOURCE_KEYS = (
    "bucketName",
    "instanceId",
    "userName",
    "roleName",
    "groupName",
    "policyArn",
    "functionName",
    "volumeId",
    "groupId",
    "vpcId",
    "subnetId",
    "keyId",
    "trailName",
    "name",
)


def extract(path: Path, document: Any) -> list[Any]:
    """The events of a CloudTrail log file; ImportFileError when it is not one."""
    if not isinstance(document, dict) or not isinstance(document.get("Records"), list):
        raise ImportFileError(f'{path}: not a CloudTrail log file (no "Records" list)')
    records: list[Any] = document["Records"]
    return records


def to_trace(event: Any) -> dict[str, Any]:
    """The trace of one CloudTrail event; ValueError (with the reason) when it cannot be one."""
    if not isinstance(event, dict):
        raise ValueError("a CloudTrail record must be a JSON object")
    for field in ("eventTime", "eventSource", "eventName"):
        if not isinstance(event.get(field), str) or not event[field]:
            raise ValueError(f"the CloudTrail record has no {field}")
    code, rating = status_of(event)
    trace: dict[str, Any] = {
        "trace_id": trace_id_of(event),
        "trace_name": _trace_name(event["eventName"]),
        "trace_rating": rating,
        "trace_type": TRACE_TYPES.get(str(event.get("eventType")), "ApiCall"),
        "time": event_time_ms(event["eventTime"]),  # ValueError when it is no time
        "service_type": service_type_of(event["eventSource"]),
        "code": code,
        "request": orjson.dumps(_request_of(event)).decode(),
    }
    resource_type, resource_id, resource_name = resource_of(event)
    optional: dict[str, Any] = {
        "resource_type": resource_type,
        "resource_id": resource_id,
        "resource_name": resource_name,
        "user": user_of(event.get("userIdentity")),
        "source_ip": _ip(event.get("sourceIPAddress")),
        "request_id": _short(event.get("requestID")),
        "api_version": _short(event.get("apiVersion"), 64),
        "message": _short(event.get("errorMessage"), 4096),
        "location_info": _short(event.get("awsRegion"), 4096),
        "resource_account_id": _short(event.get("recipientAccountId")),
        "read_only": event.get("readOnly") if isinstance(event.get("readOnly"), bool) else None,
    }
    if isinstance(event.get("responseElements"), dict | list):
        optional["response"] = orjson.dumps(event["responseElements"]).decode()
    trace.update({k: v for k, v in optional.items() if v is not None and v != ""})
    return trace


def trace_id_of(event: dict[str, Any]) -> str:
    given = event.get("eventID")
    if isinstance(given, str) and re.fullmatch(TRACE_ID_PATTERN, given):
        return given
    return str(uuid.uuid5(ID_NAMESPACE, orjson.dumps(event, option=orjson.OPT_SORT_KEYS).decode()))


def service_type_of(source: str) -> str:
    """``ec2.amazonaws.com`` -> ``EC2``, ``signin.amazonaws.com`` -> ``SIGNIN``."""
    name = re.sub(r"[^0-9A-Za-z_-]", "", source.split(".")[0]).upper()[:64]
    return name if name[:1].isalpha() else "AWS"


def status_of(event: dict[str, Any]) -> tuple[str, str]:
    """(code, trace_rating): 200/normal without an error; the status an ``errorCode`` implies (400 when
    none is known) with warning, or incident for the service's own failures (5xx)."""
    error = event.get("errorCode")
    console = event.get("responseElements")
    if not error and isinstance(console, dict) and console.get("ConsoleLogin") == "Failure":
        return "401", "warning"
    if not error:
        return "200", "normal"
    text = str(error)
    code = next((status for pattern, status in ERROR_STATUS if pattern.search(text)), "400")
    return code, "incident" if code >= "500" else "warning"


def resource_of(event: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(type, id, name): the first of ``resources`` (``AWS::S3::Bucket``, its ARN, the ARN's last part),
    else a well-known key of ``requestParameters``."""
    for resource in event.get("resources") or ():
        if isinstance(resource, dict) and isinstance(resource.get("ARN"), str):
            arn = resource["ARN"]
            name = re.split(r"[:/]", arn)[-1] or arn
            return _short(resource.get("type"), 128), _short(arn, 350), _short(name)
    params = event.get("requestParameters")
    if isinstance(params, dict):
        for key in RESOURCE_KEYS:
            value = params.get(key)
            if isinstance(value, str) and value:
                kind = key.removesuffix("Name").removesuffix("Id").removesuffix("Arn") or key
                return kind, _short(value, 350), _short(value)
    return None, None, None


def user_of(identity: Any) -> dict[str, Any] | None:
    """CTS's ``user`` from CloudTrail's ``userIdentity``."""
    if not isinstance(identity, dict):
        return None
    arn = _short(identity.get("arn"))
    name = _short(identity.get("userName")) or (arn.rsplit("/", 1)[-1] if arn and "/" in arn else None)
    user: dict[str, Any] = {
        "id": _short(identity.get("principalId")),
        "name": name or _short(identity.get("invokedBy")),
        "type": _short(identity.get("type")),
        "principal_urn": arn,
        "principal_id": _short(identity.get("principalId")),
        "account_id": _short(identity.get("accountId")),
        "access_key_id": _short(identity.get("accessKeyId")),
    }
    if user["account_id"]:
        user["domain"] = {"id": user["account_id"]}
    if identity.get("type") == "Root":
        user["principal_is_root_user"] = "true"
    invoked = identity.get("invokedBy")
    if isinstance(invoked, str) and invoked:
        user["invoked_by"] = [invoked[:256]]
    attributes = (identity.get("sessionContext") or {}).get("attributes")
    if isinstance(attributes, dict):
        session = {
            "created_at": _short(attributes.get("creationDate")),
            "mfa_authenticated": _short(attributes.get("mfaAuthenticated")),
        }
        if any(session.values()):
            user["session_context"] = {"attributes": {k: v for k, v in session.items() if v}}
    out = {k: v for k, v in user.items() if v}
    return out or None


def _request_of(event: dict[str, Any]) -> dict[str, Any]:
    """What the trace keeps in ``request``: the parameters and the event's own bookkeeping."""
    keep = (
        "requestParameters",
        "eventCategory",
        "eventVersion",
        "userAgent",
        "sourceIPAddress",
        "tlsDetails",
    )
    return {k: event[k] for k in keep if event.get(k) is not None}


def _trace_name(name: str) -> str:
    cleaned = re.sub(r"[^0-9A-Za-z._-]", "", name)[:64]
    return cleaned if re.fullmatch(TRACE_NAME_PATTERN, cleaned) else "awsEvent"


def _ip(value: Any) -> str | None:
    """``sourceIPAddress`` when it is an address (for AWS's own calls it is a service name)."""
    return value if isinstance(value, str) and is_ip_address(value) else None


def _short(value: Any, limit: int = 256) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None
