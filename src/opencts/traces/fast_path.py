"""The fast path of ingest: one strict pydantic-core validator that vouches for the usual trace.

``TraceIn.model_validate`` + ``normalise`` spend most of their time in Python callbacks (the
BeforeValidators, the field validators, pydantic's Python max_length check after a BeforeValidator) and in
building and dumping a model. Ingest needs neither the model nor the callbacks for the traces producers
usually send, so it first tries one pydantic-core validator that checks the same constraints in Rust and
yields the stored dict directly. That validator is strict on purpose: it only ever *accepts* a subset of
what TraceIn accepts (exact JSON types, no coercion) and gives the same body for it. Anything it does not
accept goes the reference way (TraceIn + normalise), which decides the verdict and words the reason, so
callers see the same answer either way. tests/traces/test_fast_path.py compares both ways on many traces.
"""

from __future__ import annotations

from typing import Any, get_args

import orjson
from pydantic import BaseModel
from pydantic_core import SchemaValidator, ValidationError
from pydantic_core import core_schema as cs

from opencts.traces.model import (
    DATA_TRACE_TYPES,
    MANAGEMENT_TRACE_TYPES,
    MANAGEMENT_TRACKER,
    MAX_TEXT,
    RATINGS,
    SERVICE_TYPE_PATTERN,
    TRACE_ID_PATTERN,
    TRACE_NAME_PATTERN,
    TraceIn,
    is_ip_address,
    new_trace_id,
)


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
        "trace_id": _s(pattern=TRACE_ID_PATTERN),
        "trace_name": _s(pattern=TRACE_NAME_PATTERN),
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
        "service_type": _s(pattern=SERVICE_TYPE_PATTERN),
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
        "tracker_name": _s(pattern=TRACE_ID_PATTERN),
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
    producers that write every field; it costs a walk over the trace, so the caller asks for it once it
    has seen one.
    """
    try:
        body: dict[str, Any] = _FAST.validate_python(_drop_nulls(item, NULLABLE) if nulls else item)
    except ValidationError:
        return None
    if not _texts_stored(body):
        return None
    source_ip = body.get("source_ip")
    if source_ip and not is_ip_address(source_ip):
        return None
    kind = "data" if body["trace_type"] in DATA_TRACE_TYPES else "system"
    if not _consistent(body, kind, project_id):
        return None
    tracker = body.get("tracker_name")
    if "trace_id" not in body:
        body["trace_id"] = new_trace_id()
    body["event_type"] = kind
    body["project_id"] = project_id
    body["tracker_name"] = tracker or MANAGEMENT_TRACKER
    body["record_time"] = record_time
    return body


def _texts_stored(body: dict[str, Any]) -> bool:
    """Turn ``request``/``response``/``message`` objects into their JSON text in place; False when one
    cannot be (not JSON-encodable, not text) or is too long."""
    for key in _TEXT_FIELDS:
        if key in body:
            text = body[key]
            of = type(text)
            if of is dict or of is list:
                try:
                    text = body[key] = orjson.dumps(text).decode()
                except orjson.JSONEncodeError:
                    return False
            elif of is not str:
                return False
            if len(text) > MAX_TEXT:
                return False
    return True


def _consistent(body: dict[str, Any], kind: str, project_id: str) -> bool:
    """Whether what the trace says of itself agrees with its type and the project it was posted to:
    ``event_type``, ``project_id``, and a tracker (data traces name their own; management traces belong
    to the management tracker)."""
    event_type = body.get("event_type")
    if event_type is not None and event_type != kind:
        return False
    given_project = body.get("project_id")
    if given_project is not None and given_project != project_id:
        return False
    tracker = body.get("tracker_name")
    if tracker is None:
        return kind != "data"
    return kind != "system" or tracker == MANAGEMENT_TRACKER
