"""The CTS trace structure, as accepted from producers and as stored.

Producers send what CTS documents (``request``/``response`` as objects or strings, ``code`` as a number or a
string); we store one normalised form, which is exactly what ListTraces returns: the types the official SDK
model expects (``code``, ``request``, ``response``, ``message`` as strings), plus ``event_type``,
``project_id`` and ``tracker_name`` from the public trace-structure page.
"""

from __future__ import annotations

import os
import socket
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator

MANAGEMENT_TRACE_TYPES = frozenset({"ApiCall", "ConsoleAction", "SystemAction"})
DATA_TRACE_TYPES = frozenset({"ObsSDK", "ObsAPI"})
RATINGS = ("normal", "warning", "incident")
MANAGEMENT_TRACKER = "system"

TRACE_NAME_PATTERN = r"^[A-Za-z][0-9A-Za-z._-]{0,63}$"
TRACE_ID_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$"
SERVICE_TYPE_PATTERN = r"^[A-Z][0-9A-Za-z_-]{0,63}$"
MAX_TEXT = 1_048_576

TraceName = Annotated[str, StringConstraints(pattern=TRACE_NAME_PATTERN)]
TraceId = Annotated[str, StringConstraints(pattern=TRACE_ID_PATTERN)]
ServiceType = Annotated[str, StringConstraints(pattern=SERVICE_TYPE_PATTERN)]
Short = Annotated[str, StringConstraints(max_length=256)]
Id = Annotated[str, StringConstraints(max_length=350)]


def _as_text(value: Any) -> Any:
    """CTS sends audited bodies as objects; the SDK reads them as strings. Store the string form."""
    if isinstance(value, dict | list):
        try:
            return orjson.dumps(value).decode()
        except orjson.JSONEncodeError as exc:  # nested deeper than orjson writes, or not JSON at all
            raise ValueError(f"cannot be stored as JSON text: {exc}") from None
    return value


def _code_as_text(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("code must be an HTTP status (a number or a string)")
    if isinstance(value, int):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_as_text), StringConstraints(max_length=MAX_TEXT)]
Code = Annotated[str, BeforeValidator(_code_as_text), StringConstraints(min_length=1, max_length=256)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, frozen=True)


class DomainInfo(_Strict):
    id: Short | None = None
    name: Short | None = None


class SessionAttributes(_Strict):
    created_at: Short | None = None
    mfa_authenticated: Short | None = None


class SessionContext(_Strict):
    attributes: SessionAttributes | None = None


class UserInfo(_Strict):
    id: Short | None = None
    name: Short | None = None
    user_name: Short | None = None
    domain: DomainInfo | None = None
    account_id: Short | None = None
    access_key_id: Short | None = None
    principal_urn: Short | None = None
    principal_id: Short | None = None
    principal_is_root_user: (
        Annotated[str, BeforeValidator(lambda v: str(v).lower() if isinstance(v, bool) else v)] | None
    ) = None
    type: Short | None = None
    invoked_by: list[Short] | None = None
    session_context: SessionContext | None = None


class TraceIn(_Strict):
    """One trace as a producer sends it to ``POST /v3/{project_id}/traces``."""

    trace_id: TraceId | None = None
    trace_name: TraceName
    trace_rating: Literal["normal", "warning", "incident"] = "normal"
    trace_type: Literal["ApiCall", "ConsoleAction", "SystemAction", "ObsSDK", "ObsAPI"]
    event_type: Literal["system", "data"] | None = None
    time: int = Field(description="When the operation happened, in ms since the epoch.")
    user: UserInfo | None = None
    request: Text | None = None
    response: Text | None = None
    code: Code | None = None
    api_version: Annotated[str, StringConstraints(max_length=64)] | None = None
    message: Text | None = None
    service_type: ServiceType
    resource_type: Annotated[str, StringConstraints(max_length=128)] | None = None
    resource_id: Id | None = None
    resource_name: Short | None = None
    resource_account_id: Short | None = None
    source_ip: Annotated[str, StringConstraints(max_length=64)] | None = None
    request_id: Short | None = None
    location_info: Annotated[str, StringConstraints(max_length=4096)] | None = None
    endpoint: Annotated[str, StringConstraints(max_length=2048)] | None = None
    resource_url: Annotated[str, StringConstraints(max_length=2048)] | None = None
    enterprise_project_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    read_only: bool | None = None
    operation_id: Short | None = None
    project_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    tracker_name: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$")] | None = (
        None
    )
    #: set by the server (:mod:`opencts.traces.submitter`): whatever a producer writes here is dropped
    submitter: Any = Field(default=None, exclude=True)

    @field_validator("time")
    @classmethod
    def _time_in_ms(cls, value: int) -> int:
        if not 1_000_000_000_000 <= value < 100_000_000_000_000:
            raise ValueError("time must be a 13-digit timestamp in milliseconds")
        return value

    @field_validator("source_ip")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value and not is_ip_address(value):
            # word for word what ipaddress.ip_address says, which this check replaced
            raise ValueError(f"{value!r} does not appear to be an IPv4 or IPv6 address")
        return value

    @property
    def kind(self) -> str:
        return "data" if self.trace_type in DATA_TRACE_TYPES else "system"


def normalise(trace: TraceIn, *, project_id: str, record_time: int) -> dict[str, Any]:
    """The stored (and listed) form of an accepted trace; ``None`` fields are left out."""
    body = trace.model_dump(exclude_none=True)
    kind = trace.kind
    if trace.event_type is not None and trace.event_type != kind:
        raise ValueError(f"event_type {trace.event_type!r} does not match trace_type {trace.trace_type!r}")
    if trace.project_id is not None and trace.project_id != project_id:
        raise ValueError("project_id in the trace differs from the project in the path")
    if kind == "data" and not trace.tracker_name:
        raise ValueError("data traces (ObsSDK, ObsAPI) need the tracker_name of their data tracker")
    if kind == "system" and trace.tracker_name not in (None, MANAGEMENT_TRACKER):
        raise ValueError("management traces belong to the tracker 'system'")
    body["trace_id"] = trace.trace_id or new_trace_id()
    body["event_type"] = kind
    body["project_id"] = project_id
    body["tracker_name"] = trace.tracker_name or MANAGEMENT_TRACKER
    body["record_time"] = record_time
    return body


def user_name(body: dict[str, Any]) -> str | None:
    """The name ListTraces' ``user`` filter matches: the IAM user name."""
    user = body.get("user")
    if not user:
        return None
    name = user.get("name") or user.get("user_name")
    return str(name) if name is not None else None


def access_key_id(body: dict[str, Any]) -> str | None:
    user = body.get("user")
    return user.get("access_key_id") if user else None


def is_ip_address(value: str) -> bool:
    """Whether ``ipaddress.ip_address(value)`` would accept ``value``, for a thirtieth of its cost.

    ``inet_pton`` (glibc's, as ``ipaddress`` was written to match) and ``ipaddress`` implement the same
    grammar (no leading zeros in IPv4 octets, at most one ``::``, an IPv4 tail only at the end, ASCII only),
    except that ``ipaddress`` also takes an IPv6 zone (``fe80::1%eth0``: anything non-empty without a
    second ``%``), which is split off here first. ``tests/traces/test_source_ip.py`` holds the two to the
    same verdict, on the platform the suite runs on, over many valid and invalid strings.
    """
    if ":" not in value:  # no IPv6 form lacks a colon, and no IPv4 form has one
        family = _AF_INET
    else:
        family = _AF_INET6
        address, percent, zone = value.partition("%")
        if percent:
            if not zone or "%" in zone:
                return False
            value = address
    try:
        _inet_pton(family, value)
    except (OSError, ValueError):  # ValueError: an embedded NUL
        return False
    return True


_AF_INET, _AF_INET6, _inet_pton = socket.AF_INET, socket.AF_INET6, socket.inet_pton
#: the RFC 4122 variant bits (10xx) over the high nibble of the ninth byte, as uuid.UUID(version=4) sets them
_UUID4_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def uuid4_text(raw: bytes) -> str:
    """``str(uuid.UUID(bytes=raw, version=4))`` without building a UUID object: a fifth of the cost."""
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_UUID4_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def new_trace_id() -> str:
    """A random UUID 4 in its usual text form, for traces sent without an id (cheaper than ``uuid4``)."""
    return uuid4_text(os.urandom(16))
