"""The CTS trace structure, as accepted from producers and as stored.

Producers send what CTS documents (``request``/``response`` as objects or strings, ``code`` as a number or a
string); we store one normalised form, which is exactly what ListTraces returns: the types the official SDK
model expects (``code``, ``request``, ``response``, ``message`` as strings), plus ``event_type``,
``project_id`` and ``tracker_name`` from the public trace-structure page.
"""

from __future__ import annotations

import os
import socket
from typing import Annotated, Any, Literal, get_args

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator
from pydantic_core import SchemaValidator, ValidationError
from pydantic_core import core_schema as cs

MANAGEMENT_TRACE_TYPES = frozenset({"ApiCall", "ConsoleAction", "SystemAction"})
DATA_TRACE_TYPES = frozenset({"ObsSDK", "ObsAPI"})
RATINGS = ("normal", "warning", "incident")
MANAGEMENT_TRACKER = "system"

_TRACE_NAME = r"^[A-Za-z][0-9A-Za-z._-]{0,63}$"
_TRACE_ID = r"^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$"
_SERVICE_TYPE = r"^[A-Z][0-9A-Za-z_-]{0,63}$"
_MAX_TEXT = 1_048_576

TraceName = Annotated[str, StringConstraints(pattern=_TRACE_NAME)]
TraceId = Annotated[str, StringConstraints(pattern=_TRACE_ID)]
ServiceType = Annotated[str, StringConstraints(pattern=_SERVICE_TYPE)]
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


Text = Annotated[str, BeforeValidator(_as_text), StringConstraints(max_length=_MAX_TEXT)]
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
    """A random UUID 4 in its usual text form, for traces sent without an id (uuid4 costs 6 µs)."""
    return uuid4_text(os.urandom(16))


# -- the fast path -------------------------------------------------------------------------------------
#
# TraceIn.model_validate + normalise cost about 45 µs a trace, most of it in Python callbacks (the
# BeforeValidators, the field validators, pydantic's Python max_length check after a BeforeValidator) and in
# building and dumping a model. Ingest needs neither the model nor the callbacks for the traces producers
# usually send, so it first tries one pydantic-core validator that checks the same constraints in Rust and
# yields the stored dict directly. That validator is strict on purpose: it only ever *accepts* a subset of
# what TraceIn accepts (exact JSON types, no coercion) and gives the same body for it. Anything it does not
# accept goes the reference way (TraceIn + normalise), which decides the verdict and words the reason, so
# callers see exactly what they saw before. tests/traces/test_fast_path.py compares both ways on many traces.


def _s(max_length: int | None = None, *, pattern: str | None = None, min_length: int | None = None) -> Any:
    return cs.str_schema(max_length=max_length, min_length=min_length, pattern=pattern, strict=True)


def _record(fields: dict[str, Any], required: frozenset[str] = frozenset()) -> Any:
    return cs.typed_dict_schema(
        {name: cs.typed_dict_field(schema, required=name in required) for name, schema in fields.items()},
        extra_behavior="forbid",
        strict=True,
    )


_SHORT = _s(256)
_TEXT = cs.any_schema()  # dict/list become JSON text and the length is checked in fast_normalise
#: field order is TraceIn's (and UserInfo's...), because model_dump writes the stored body in that order
_FAST_USER = _record(
    {
        "id": _SHORT,
        "name": _SHORT,
        "user_name": _SHORT,
        "domain": _record({"id": _SHORT, "name": _SHORT}),
        "account_id": _SHORT,
        "access_key_id": _SHORT,
        "principal_urn": _SHORT,
        "principal_id": _SHORT,
        "principal_is_root_user": _s(),  # a bool becomes "true"/"false" the reference way
        "type": _SHORT,
        "invoked_by": cs.list_schema(_SHORT, strict=True),
        "session_context": _record(
            {"attributes": _record({"created_at": _SHORT, "mfa_authenticated": _SHORT})}
        ),
    }
)
_FAST_TRACE = _record(
    {
        "trace_id": _s(pattern=_TRACE_ID),
        "trace_name": _s(pattern=_TRACE_NAME),
        "trace_rating": cs.with_default_schema(cs.literal_schema(list(RATINGS)), default="normal"),
        "trace_type": cs.literal_schema(sorted(MANAGEMENT_TRACE_TYPES | DATA_TRACE_TYPES)),
        "event_type": cs.literal_schema(["system", "data"]),
        "time": cs.int_schema(strict=True, ge=1_000_000_000_000, lt=100_000_000_000_000),
        "user": _FAST_USER,
        "request": _TEXT,
        "response": _TEXT,
        "code": cs.union_schema(
            [
                _s(256, min_length=1),
                # an int becomes its decimal text in Rust; a bool is no int here (strict), as in _code_as_text
                cs.chain_schema([cs.int_schema(strict=True), cs.str_schema(coerce_numbers_to_str=True)]),
            ]
        ),
        "api_version": _s(64),
        "message": _TEXT,
        "service_type": _s(pattern=_SERVICE_TYPE),
        "resource_type": _s(128),
        "resource_id": _s(350),
        "resource_name": _SHORT,
        "resource_account_id": _SHORT,
        "source_ip": _s(64),
        "request_id": _SHORT,
        "location_info": _s(4096),
        "endpoint": _s(2048),
        "resource_url": _s(2048),
        "enterprise_project_id": _s(64),
        "read_only": cs.bool_schema(strict=True),
        "operation_id": _SHORT,
        "project_id": _s(64),
        "tracker_name": _s(pattern=_TRACE_ID),
    },
    required=frozenset({"trace_name", "trace_type", "time", "service_type"}),
)
_FAST = SchemaValidator(_FAST_TRACE)
_TEXT_FIELDS = ("request", "response", "message")


def _nullable(model: type[BaseModel]) -> dict[str, Any]:
    """The fields of ``model`` that may be null (default None), each with the same for its own model."""
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if field.is_required() or field.default is not None:
            continue
        inner = [t for t in get_args(field.annotation) if isinstance(t, type) and issubclass(t, BaseModel)]
        out[name] = _nullable(inner[0]) if inner else None
    return out


#: read off the models, so a field added there is nullable here too
NULLABLE = _nullable(TraceIn)


def _drop_nulls(value: dict[str, Any], nullable: dict[str, Any]) -> dict[str, Any]:
    """``value`` without the nulls of optional fields, which model_dump(exclude_none=True) drops too.

    Nulls elsewhere (a required field, an unknown field, inside a list or a request body) stay, so the
    fast validator refuses them and the reference way answers.
    """
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in nullable:
            if item is None:
                continue
            inner = nullable[key]
            if inner is not None and type(item) is dict:
                item = _drop_nulls(item, inner)
        out[key] = item
    return out


def fast_normalise(
    item: dict[str, Any], project_id: str, record_time: int, *, nulls: bool = False
) -> dict[str, Any] | None:
    """``normalise(TraceIn.model_validate(item), ...)`` for the traces producers usually send; else None.

    None only means "not vouched for here": the caller must then take the reference way, which may still
    accept the trace (a float ``time``, a bool ``principal_is_root_user``) or words why it does not.
    ``nulls`` first drops the nulls of optional fields, as ``model_dump(exclude_none=True)`` would, for
    producers that write every field; it costs a few µs, so the caller asks for it once it has seen one.
    """
    try:
        body: dict[str, Any] = _FAST.validate_python(_drop_nulls(item, NULLABLE) if nulls else item)
    except ValidationError:
        return None
    for key in _TEXT_FIELDS:
        if key in body:
            text = body[key]
            of = type(text)
            if of is dict or of is list:
                try:
                    text = body[key] = orjson.dumps(text).decode()
                except orjson.JSONEncodeError:
                    return None
            elif of is not str:
                return None
            if len(text) > _MAX_TEXT:
                return None
    source_ip = body.get("source_ip")
    if source_ip and not is_ip_address(source_ip):
        return None
    kind = "data" if body["trace_type"] in DATA_TRACE_TYPES else "system"
    event_type = body.get("event_type")
    if event_type is not None and event_type != kind:
        return None
    given_project = body.get("project_id")
    if given_project is not None and given_project != project_id:
        return None
    tracker = body.get("tracker_name")
    if tracker is None:
        if kind == "data":
            return None
    elif kind == "system" and tracker != MANAGEMENT_TRACKER:
        return None
    if "trace_id" not in body:
        body["trace_id"] = new_trace_id()
    body["event_type"] = kind
    body["project_id"] = project_id
    body["tracker_name"] = tracker or MANAGEMENT_TRACKER
    body["record_time"] = record_time
    return body
