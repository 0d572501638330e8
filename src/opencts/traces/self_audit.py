"""OpenCTS audits itself: every write to its own APIs, every login and logout, and every denial becomes
a trace, exactly as a cloud service reports to CTS.

Secrets never reach the trail: bodies are redacted by key name before they are stored, and cut to a size
that keeps one audit trace small.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from opencts.traces.submitter import SELF
from opencts.traces.writer import TraceWriter

log = logging.getLogger("opencts.audit")

MAX_BODY_CHARS = 4096
_SECRET_KEY = re.compile(r"password|secret|token|authorization|user_data|private", re.IGNORECASE)
REDACTED = "***"
_VERB = re.compile(r"^(batchCreate|batchDelete|create|update|delete|list|show|check|put|add|cancel|publish)")


def redact(value: Any) -> Any:
    """Replace the values of secret-looking keys, at any depth."""
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def body_text(raw: bytes | None) -> str | None:
    """The redacted, size-capped text of a JSON body; non-JSON bodies are described, not stored."""
    if not raw:
        return None
    try:
        text = orjson.dumps(redact(orjson.loads(raw))).decode()
    except orjson.JSONDecodeError:
        return f"<{len(raw)} bytes, not JSON>"
    return text if len(text) <= MAX_BODY_CHARS else text[:MAX_BODY_CHARS] + "…(truncated)"


def service_of(path: str) -> str:
    if path.startswith("/v1.0/") and "/kms/" in path:
        return "KMS"
    if "/fgs/" in path:
        return "FunctionGraph"
    if path.startswith("/v2/") and "/notifications" in path:
        return "SMN"
    if path.startswith(("/v3/auth", "/v3/projects", "/v3/users", "/v3/groups", "/v3/roles", "/v3.0/")):
        return "IAM"
    return "CTS"


def resource_type_of(operation: str) -> str:
    if operation in ("login", "logout"):
        return "user"
    rest = _VERB.sub("", operation) or operation
    return rest[0].lower() + rest[1:]


def rating_of(status: int) -> str:
    """Denials of an authenticated caller and server faults are incidents; other failures warnings."""
    if status == 403 or status >= 500:
        return "incident"
    if status >= 400:
        return "warning"
    return "normal"


@dataclass(frozen=True, slots=True)
class AuditedCall:
    operation: str
    method: str
    path: str
    status: int
    request_body: bytes | None
    response_body: bytes | None
    request_id: str
    source_ip: str | None
    time: int
    user: dict[str, Any] | None
    resource_id: str | None = None
    resource_name: str | None = None
    trace_type: str = "ApiCall"
    #: the service the trace is filed under when the path does not say (console logins are IAM's)
    service_type: str | None = None


#: what a NUL character of the caller's input becomes in the trail (U+2400 SYMBOL FOR NULL)
NUL_SHOWN = "\u2400"
#: the trace structure's limits on the fields that carry the caller's input (opencts.traces.model)
_LIMITS = {"resource_id": 350, "resource_name": 256, "request_id": 256, "api_version": 64}


def _storable(value: Any) -> Any:
    """``value`` with every NUL shown as ``NUL_SHOWN``, at any depth.

    No backend stores NUL in text, so ingest refuses a trace holding one; left in, a NUL in a path, a
    name or a user name would keep the caller's attempt out of the trail altogether.
    """
    if isinstance(value, str):
        return value.replace("\x00", NUL_SHOWN) if "\x00" in value else value
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def _cut(value: str | None, limit: int) -> str | None:
    """Fit a field the caller chose (a 3,000-character resource id) instead of losing the trace."""
    return value if value is None or len(value) <= limit else value[: limit - 1] + "…"


def audit_trace(call: AuditedCall) -> dict[str, Any]:
    """The call as a trace that ingest always accepts, whatever the caller put in its path, names or body."""
    trace: dict[str, Any] = {
        "trace_id": str(uuid.uuid4()),
        "trace_name": call.operation,
        "trace_type": call.trace_type,
        "trace_rating": rating_of(call.status),
        "service_type": call.service_type or service_of(call.path),
        "resource_type": resource_type_of(call.operation),
        "time": call.time,
        "code": str(call.status),
        "api_version": call.path.strip("/").split("/", 1)[0] or None,
        "request_id": call.request_id,
        "request": body_text(call.request_body),
        "response": body_text(call.response_body),
        "resource_id": call.resource_id,
        "resource_name": call.resource_name,
        "user": call.user,
        "source_ip": call.source_ip,
        "read_only": call.method in ("GET", "HEAD"),
        "message": f"{call.method} {call.path}",
    }
    for name, limit in _LIMITS.items():
        trace[name] = _cut(trace[name], limit)
    return {k: _storable(v) for k, v in trace.items() if v is not None}


async def record(writer: TraceWriter, project_id: str, call: AuditedCall) -> None:
    """Append the call's trace to the project's trail, as CTS would record it.

    A project whose management tracker records nothing of this call (deleted, disabled, or excluding
    the operation) gets no trace, exactly as for any other service's: that is the tracker's decision, not
    a failure. A trace refused for any other reason is a bug in the audit trail, and is logged.
    """
    trace = audit_trace(call)
    if writer.policy is not None:
        policy = await writer.policy(project_id)
        refused = policy is not None and policy.refuse(
            kind="system",
            service_type=trace["service_type"],
            trace_name=call.operation,
            tracker_name="system",
        )
        if refused:
            return
    results = await writer.write(project_id, [trace], submitter=SELF, shed=False)
    if results and results[0].status == "rejected":
        log.warning("audit trace rejected: %s", results[0].reason)
