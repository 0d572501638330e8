"""The CTS trace structure, as accepted from producers and as stored.

Producers send what CTS documents (``request``/``response`` as objects or strings, ``code`` as a number or a
string); we store one normalised form, which is exactly what ListTraces returns: the types the official SDK
model expects (``code``, ``request``, ``response``, ``message`` as strings), plus ``event_type``,
``project_id`` and ``tracker_name`` from the public trace-structure page.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator

MANAGEMENT_TRACE_TYPES = frozenset({"ApiCall", "ConsoleAction", "SystemAction"})
DATA_TRACE_TYPES = frozenset({"ObsSDK", "ObsAPI"})
RATINGS = ("normal", "warning", "incident")
MANAGEMENT_TRACKER = "system"

TraceName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][0-9A-Za-z._-]{0,63}$")]
TraceId = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$")]
ServiceType = Annotated[str, StringConstraints(pattern=r"^[A-Z][0-9A-Za-z_-]{0,63}$")]
Short = Annotated[str, StringConstraints(max_length=256)]
Id = Annotated[str, StringConstraints(max_length=350)]


def _as_text(value: Any) -> Any:
    """CTS sends audited bodies as objects; the SDK reads them as strings. Store the string form."""
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return value


def _code_as_text(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("code must be an HTTP status (a number or a string)")
    if isinstance(value, int):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_as_text), StringConstraints(max_length=1_048_576)]
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

    @field_validator("time")
    @classmethod
    def _time_in_ms(cls, value: int) -> int:
        if not 1_000_000_000_000 <= value < 100_000_000_000_000:
            raise ValueError("time must be a 13-digit timestamp in milliseconds")
        return value

    @field_validator("source_ip")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value:
            ipaddress.ip_address(value)
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
    body["trace_id"] = trace.trace_id or str(uuid.uuid4())
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
