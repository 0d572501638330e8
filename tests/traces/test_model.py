from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from cts_helpers import TraceFactory
from opencts.traces.model import TraceIn, normalise


def validate(trace: dict[str, Any]) -> TraceIn:
    return TraceIn.model_validate(trace)


def test_a_full_trace_normalises_to_the_sdk_types(make_trace: TraceFactory) -> None:
    trace = validate(make_trace(code=201, message={"note": "x"}, read_only=False))
    body = normalise(trace, project_id="p1", record_time=1_800_000_000_000)
    assert body["code"] == "201"
    assert body["request"] == '{"server":{"name":"web-1"}}'
    assert body["message"] == '{"note":"x"}'
    assert body["event_type"] == "system"
    assert body["tracker_name"] == "system"
    assert body["project_id"] == "p1"
    assert body["record_time"] == 1_800_000_000_000


def test_defaults_and_generated_id(make_trace: TraceFactory) -> None:
    trace = validate(make_trace(trace_id=None, trace_rating=None))
    assert trace.trace_rating == "normal"
    body = normalise(trace, project_id="p", record_time=1)
    assert len(body["trace_id"]) == 36


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"trace_name": "9starts-with-digit"}, "trace_name"),
        ({"trace_name": "x" * 65}, "trace_name"),
        ({"trace_name": "has space"}, "trace_name"),
        ({"trace_rating": "critical"}, "trace_rating"),
        ({"trace_type": "Console"}, "trace_type"),
        ({"service_type": "ecs"}, "service_type"),
        ({"time": 1_700_000_000}, "milliseconds"),
        ({"time": "yesterday"}, "time"),
        ({"source_ip": "not-an-ip"}, "source_ip"),
        ({"code": True}, "code"),
        ({"unknown_field": 1}, "unknown_field"),
        ({"user": {"name": "a", "password": "x"}}, "user.password"),
    ],
)
def test_bad_fields_are_named(make_trace: TraceFactory, override: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        validate(make_trace(**override))


def test_string_bodies_are_kept_as_given(make_trace: TraceFactory) -> None:
    body = normalise(validate(make_trace(request="raw text", code="200")), project_id="p", record_time=1)
    assert body["request"] == "raw text"
    assert body["code"] == "200"


def test_data_traces_need_a_data_tracker(make_trace: TraceFactory) -> None:
    trace = validate(make_trace(trace_type="ObsAPI", service_type="OBS"))
    with pytest.raises(ValueError, match="tracker_name"):
        normalise(trace, project_id="p", record_time=1)
    body = normalise(
        validate(make_trace(trace_type="ObsSDK", service_type="OBS", tracker_name="bucket-audit")),
        project_id="p",
        record_time=1,
    )
    assert body["event_type"] == "data"
    assert body["tracker_name"] == "bucket-audit"


def test_inconsistent_event_type_project_and_tracker_are_refused(make_trace: TraceFactory) -> None:
    with pytest.raises(ValueError, match="event_type"):
        normalise(validate(make_trace(event_type="data")), project_id="p", record_time=1)
    with pytest.raises(ValueError, match="project_id"):
        normalise(validate(make_trace(project_id="other")), project_id="p", record_time=1)
    with pytest.raises(ValueError, match="system"):
        normalise(validate(make_trace(tracker_name="mine")), project_id="p", record_time=1)
