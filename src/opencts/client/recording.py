"""Traces as an application records them: one dict per operation, in the shape the ingest API takes.

Each trace gets its id here, when it is recorded, and keeps it through batching, the spool and every retry:
OpenCTS stores a trace once per ``(project, trace_id)``, so a batch sent twice (a timeout after the server
committed it, a process killed between sending and forgetting) adds nothing the second time.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Resource", "make_trace", "new_trace_id", "rating_for_status", "trace_name_for"]

#: the trace grammar of ``opencts.traces.model`` (held equal by the client's tests)
TRACE_NAME_PATTERN = r"^[A-Za-z][0-9A-Za-z._-]{0,63}$"
_NOT_NAME = re.compile(r"[^0-9A-Za-z._-]+")


@dataclass(frozen=True)
class Resource:
    """What a request acted on, as the app's resource callable names it (every part optional)."""

    type: str | None = None
    id: str | None = None
    name: str | None = None


def new_trace_id() -> str:
    """32 hex digits: random, so ids from many processes never meet, and within the trace id grammar."""
    return uuid.uuid4().hex


def rating_for_status(status: int) -> str:
    """CTS's rating of an HTTP outcome: a server error is an incident, a refused request a warning."""
    if status >= 500:
        return "incident"
    if status >= 400:
        return "warning"
    return "normal"


def trace_name_for(label: str) -> str:
    """``label`` (a route name, ``POST /things``) made a valid trace name: other characters become ``_``,
    a leading non-letter gets an ``op_`` prefix, and it is cut to 64 characters."""
    name = _NOT_NAME.sub("_", label.strip()).strip("_") or "request"
    if not name[0].isalpha():
        name = f"op_{name}"
    return name[:64]


def make_trace(
    trace_name: str,
    *,
    service_type: str,
    user: str | Mapping[str, Any] | None = None,
    resource: Resource | None = None,
    status: int | None = None,
    trace_rating: str | None = None,
    source_ip: str | None = None,
    request_id: str | None = None,
    trace_type: str = "ApiCall",
    time_ms: int | None = None,
    trace_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One trace to send. ``status`` sets ``code`` and, unless given, ``trace_rating``; ``user`` is a user
    name or a CTS user object; ``extra`` adds any other field of the trace structure as it is."""
    trace: dict[str, Any] = {
        "trace_id": trace_id or new_trace_id(),
        "trace_name": trace_name,
        "trace_type": trace_type,
        "service_type": service_type,
        "time": time_ms if time_ms is not None else time.time_ns() // 1_000_000,
    }
    if status is not None:
        trace["code"] = str(status)
    rating = trace_rating or (rating_for_status(status) if status is not None else None)
    if rating is not None:
        trace["trace_rating"] = rating
    if user is not None:
        trace["user"] = {"name": user} if isinstance(user, str) else dict(user)
    if resource is not None:
        for key, value in (("type", resource.type), ("id", resource.id), ("name", resource.name)):
            if value is not None:
                trace[f"resource_{key}"] = value
    if source_ip:
        trace["source_ip"] = source_ip
    if request_id:
        trace["request_id"] = request_id
    trace.update((k, v) for k, v in extra.items() if v is not None)
    return trace
