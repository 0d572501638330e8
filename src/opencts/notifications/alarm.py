"""The SMN message a key event raises: who did what to which resource, from where, when, and how it went.

One ``message_structure`` serves every subscriber of the topic (SMN picks the entry named after the
subscription's protocol, else ``default``): a readable text for email, a one-line text for SMS, and for
HTTP(S) a JSON document carrying the whole stored trace, so an audit system receives the event itself and
not a description of it. Everything stays within SMN's limits (subject 512 bytes on one line, the
structure 256 KB); a trace too large for that loses the tails of its ``request``/``response``/``message``
texts first, and says so in ``truncated``.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from opencts.clock import iso_ms
from opencts.notifications.matcher import Notification
from opencts.smn.model import MAX_MESSAGE_BYTES, PublishMessage
from opencts.traces.model import user_name

MAX_SUBJECT_BYTES = 512
MAX_SMS_CHARS = 300
#: the biggest texts a trace carries, trimmed in this order when the structure would be too large
_BULKY = ("request", "response", "message")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def iso_time(ms: Any) -> str:
    """Milliseconds since the epoch as ISO 8601 UTC (``2024-05-01T10:00:00.123Z``); odd values as given."""
    if isinstance(ms, int) and not isinstance(ms, bool):
        try:
            return iso_ms(ms)
        except OverflowError:
            return str(ms)
    return "unknown" if ms is None else str(ms)


def one_line(value: Any) -> str:
    return _CONTROL.sub(" ", str(value)).strip()


def cut_bytes(text: str, limit: int) -> str:
    """At most ``limit`` bytes of UTF-8, cut on a character boundary."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode(errors="ignore") + "..."


def _who(trace: dict[str, Any]) -> str:
    user = trace.get("user") if isinstance(trace.get("user"), dict) else None
    name = user_name(trace) if user else None
    if name:
        return name
    if user and user.get("id"):
        return f"user {user['id']}"
    return "an unknown user"


def _resource(trace: dict[str, Any]) -> str:
    parts = [str(trace[k]) for k in ("resource_type",) if trace.get(k)]
    named = trace.get("resource_name") or trace.get("resource_id")
    if named:
        parts.append(str(named))
    return " ".join(parts)


def subject(trace: dict[str, Any]) -> str:
    """``[CTS][warning] deleteSecurityGroupRule on VPC securityGroup sg-web by alice``."""
    rating = trace.get("trace_rating") or "normal"
    what = f"{trace.get('trace_name', '?')} on {trace.get('service_type', '?')}"
    resource = _resource(trace)
    text = f"[CTS][{rating}] {what}{' ' + resource if resource else ''} by {_who(trace)}"
    return cut_bytes(one_line(text), MAX_SUBJECT_BYTES)


def text(n: Notification, trace: dict[str, Any]) -> str:
    """The readable alarm (email and default): one labelled line per fact."""
    user = trace.get("user") if isinstance(trace.get("user"), dict) else {}
    domain = (user or {}).get("domain") or {}
    account = f" (account {domain['name']})" if isinstance(domain, dict) and domain.get("name") else ""
    rows = [
        ("Operation", trace.get("trace_name")),
        ("Service", trace.get("service_type")),
        ("Resource type", trace.get("resource_type")),
        ("Resource name", trace.get("resource_name")),
        ("Resource ID", trace.get("resource_id")),
        ("User", f"{_who(trace)}{account}"),
        ("Source IP", trace.get("source_ip")),
        ("Time", iso_time(trace.get("time"))),
        ("Rating", trace.get("trace_rating")),
        ("Code", trace.get("code")),
        ("Trace type", trace.get("trace_type")),
        ("Trace ID", trace.get("trace_id")),
        ("Project", trace.get("project_id") or n.project_id),
    ]
    lines = [f"{label + ':':<15}{one_line(value)[:1024]}" for label, value in rows if value not in (None, "")]
    head = f"Key event notification {n.name} ({n.notification_id}) was raised by this operation:"
    return "\n".join([head, "", *lines])


def sms(trace: dict[str, Any]) -> str:
    rating = trace.get("trace_rating") or "normal"
    text = (
        f"CTS {rating}: {_who(trace)} {trace.get('trace_name', '?')} {trace.get('service_type', '?')}"
        f" {_resource(trace)} from {trace.get('source_ip') or '?'} at {iso_time(trace.get('time'))}"
    )
    return one_line(text)[:MAX_SMS_CHARS]


def _trimmed(trace: dict[str, Any], keep: int) -> dict[str, Any]:
    out = dict(trace)
    cut = [k for k in _BULKY if isinstance(out.get(k), str) and len(out[k]) > keep]
    for key in cut:
        out[key] = out[key][:keep]
    if cut:
        out["truncated"] = cut
    return out


def build(n: Notification, trace: dict[str, Any]) -> PublishMessage:
    """The PublishMessage for one (notification, trace); always within SMN's size limits."""
    body = text(n, trace)
    short = sms(trace)
    structure = ""
    for keep in (None, 16_384, 1_024, 0):
        view = trace if keep is None else _trimmed(trace, keep)
        http = orjson.dumps(
            {"notification_name": n.name, "notification_id": n.notification_id, "trace": view}
        ).decode()
        structure = orjson.dumps(
            {"default": body, "email": body, "sms": short, "http": http, "https": http}
        ).decode()
        if len(structure.encode()) <= MAX_MESSAGE_BYTES:
            break
    return PublishMessage(subject=subject(trace), message=body, message_structure=structure)
