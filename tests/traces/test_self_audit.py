from __future__ import annotations

import orjson

from opencts.traces.model import TraceIn
from opencts.traces.self_audit import (
    NUL_SHOWN,
    AuditedCall,
    audit_trace,
    body_text,
    rating_of,
    redact,
    resource_type_of,
)


def test_redaction_reaches_every_depth() -> None:
    doc = {
        "user": {"name": "a", "password": "p"},
        "list": [{"secret_key": "s"}],
        "X-Auth-Token": "t",
        "ok": 1,
    }
    assert redact(doc) == {
        "user": {"name": "a", "password": "***"},
        "list": [{"secret_key": "***"}],
        "X-Auth-Token": "***",
        "ok": 1,
    }


def test_bodies_are_capped_and_non_json_is_described() -> None:
    assert body_text(b"\x00\x01") == "<2 bytes, not JSON>"
    long = orjson.dumps({"a": "x" * 10_000})
    text = body_text(long)
    assert text is not None and text.endswith("(truncated)") and len(text) < 4200


def test_ratings_and_resource_types() -> None:
    assert [rating_of(s) for s in (200, 404, 401, 403, 500)] == [
        "normal",
        "warning",
        "warning",
        "incident",
        "incident",
    ]
    assert resource_type_of("createTracker") == "tracker"
    assert resource_type_of("batchCreateResourceTags") == "resourceTags"
    assert resource_type_of("login") == "user"


def test_an_audit_trace_is_a_valid_trace() -> None:
    call = AuditedCall(
        operation="createTracker",
        method="POST",
        path="/v3/p/tracker",
        status=201,
        request_body=b'{"a":1}',
        response_body=b"{}",
        request_id="r",
        source_ip="127.0.0.1",
        time=1_800_000_000_000,
        user={"name": "admin"},
        resource_name="system",
    )
    trace = TraceIn.model_validate(audit_trace(call))
    assert (trace.service_type, trace.trace_rating, trace.code, trace.api_version) == (
        "CTS",
        "normal",
        "201",
        "v3",
    )


def test_hostile_names_and_paths_are_fitted_into_the_trail_not_refused() -> None:
    # a NUL in the path, the name and the user name, an over-long id: ingest would refuse each as it is,
    # and the caller's attempt would leave no trace
    call = AuditedCall(
        operation="deleteTopic",
        method="DELETE",
        path="/v2/p/notifications/topics/a\x00b",
        status=404,
        request_body=b'{"name": "x\\u0000y"}',
        response_body=None,
        request_id="r",
        source_ip="127.0.0.1",
        time=1_800_000_000_000,
        user={"name": "ad\x00min", "domain": {"name": "d\x00"}},
        resource_id="i" * 3000,
        resource_name="n\x00" * 200,
    )
    body = audit_trace(call)
    trace = TraceIn.model_validate(body)
    assert "\x00" not in orjson.dumps(body).decode("unicode_escape")
    assert trace.message == f"DELETE /v2/p/notifications/topics/a{NUL_SHOWN}b"
    assert trace.resource_id == "i" * 349 + "…" and len(trace.resource_name or "") == 256
    assert body["user"] == {"name": f"ad{NUL_SHOWN}min", "domain": {"name": f"d{NUL_SHOWN}"}}
    assert trace.request == '{"name":"x\\u0000y"}'  # the body's text keeps the escape, which stores fine
