"""A data tracker records only the object operations its ``data_event`` names: READ, WRITE or both."""

from __future__ import annotations

from typing import Any

import pytest

from cts_helpers import Api, TraceFactory
from opencts.trackers.recording import data_event

#: (trace name, the data_event that covers it): the verb forms CTS shows for OBS, the access-log form and
#: SDK-style names
OPERATIONS = [
    ("GET.OBJECT", "READ"),
    ("HEAD.OBJECT", "READ"),
    ("REST.GET.OBJECT", "READ"),
    ("getObject", "READ"),
    ("HeadObject", "READ"),
    ("ListObjects", "READ"),
    ("OPTIONS.OBJECT", "READ"),
    ("PUT.OBJECT", "WRITE"),
    ("POST.OBJECT", "WRITE"),
    ("DELETE.OBJECT", "WRITE"),
    ("COPY.OBJECT", "WRITE"),
    ("REST.PUT.PART", "WRITE"),
    ("putObject", "WRITE"),
    ("deleteObjects", "WRITE"),
]


@pytest.mark.parametrize(("trace_name", "expected"), OPERATIONS)
def test_each_operation_is_a_read_or_a_write(trace_name: str, expected: str) -> None:
    assert data_event(trace_name) == expected


def tracker(name: str, events: list[str]) -> dict[str, Any]:
    return {
        "tracker_type": "data",
        "tracker_name": name,
        "data_bucket": {"data_bucket_name": f"{name}-bucket", "data_event": events},
    }


async def recorded(api: Api, make_trace: TraceFactory, name: str, events: list[str]) -> dict[str, str]:
    """Create a data tracker with ``events`` and post one trace per operation; trace name -> verdict."""
    resp = await api.client.post(f"/v3/{api.project}/tracker", json=tracker(name, events))
    assert resp.status_code == 201, resp.text
    traces = [
        make_trace(trace_type="ObsAPI", service_type="OBS", trace_name=op, tracker_name=name)
        for op, _ in OPERATIONS
    ]
    results = (await api.put(traces)).json()["results"]
    return {op: r["status"] for (op, _), r in zip(OPERATIONS, results, strict=True)}


async def test_a_write_tracker_records_writes_only(api: Api, make_trace: TraceFactory) -> None:
    verdicts = await recorded(api, make_trace, "writes", ["WRITE"])
    assert verdicts == {op: "accepted" if ev == "WRITE" else "rejected" for op, ev in OPERATIONS}
    listed = await api.list(trace_type="data", tracker_name="writes", limit=200)
    assert {t["trace_name"] for t in listed.json()["traces"]} == {
        op for op, ev in OPERATIONS if ev == "WRITE"
    }


async def test_a_read_tracker_records_reads_only(api: Api, make_trace: TraceFactory) -> None:
    verdicts = await recorded(api, make_trace, "reads", ["READ"])
    assert verdicts == {op: "accepted" if ev == "READ" else "rejected" for op, ev in OPERATIONS}


async def test_a_tracker_of_both_records_everything(api: Api, make_trace: TraceFactory) -> None:
    verdicts = await recorded(api, make_trace, "both", ["READ", "WRITE"])
    assert set(verdicts.values()) == {"accepted"}


async def test_the_refusal_says_why(api: Api, make_trace: TraceFactory) -> None:
    await api.client.post(f"/v3/{api.project}/tracker", json=tracker("why", ["WRITE"]))
    trace = make_trace(trace_type="ObsAPI", service_type="OBS", trace_name="GET.OBJECT", tracker_name="why")
    [result] = (await api.put([trace])).json()["results"]
    assert result["status"] == "rejected"
    assert "records only WRITE" in result["reason"] and "GET.OBJECT is a READ" in result["reason"]


async def test_changing_data_event_changes_what_is_recorded(api: Api, make_trace: TraceFactory) -> None:
    await api.client.post(f"/v3/{api.project}/tracker", json=tracker("flip", ["WRITE"]))
    get = make_trace(trace_type="ObsAPI", service_type="OBS", trace_name="GET.OBJECT", tracker_name="flip")
    assert (await api.put([get])).json()["results"][0]["status"] == "rejected"
    resp = await api.client.put(f"/v3/{api.project}/tracker", json=tracker("flip", ["READ"]))
    assert resp.status_code == 200, resp.text
    again = make_trace(trace_type="ObsAPI", service_type="OBS", trace_name="GET.OBJECT", tracker_name="flip")
    assert (await api.put([again])).json()["results"][0]["status"] == "accepted"
