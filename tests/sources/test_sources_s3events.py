"""Bucket notifications (MinIO, Ceph RGW) become OBS data traces on the data trackers that want them.

``vectors/`` holds notifications as the stores' webhook targets post them: MinIO's envelope
(``EventName``, ``Key``, ``Records``) for a PUT and a GET, and a Ceph RGW record (AWS-style event name
without ``s3:``, empty ``sourceIPAddress`` and ``versionId``) for a DELETE. Times are moved to a minute ago.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from cts_helpers import Api
from opencts.clock import now_ms
from opencts.errors import BadRequest
from opencts.sources import s3events
from opencts.sources.s3events import DataTracker

VECTORS = Path(__file__).parent / "vectors"


def notification(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads((VECTORS / name).read_bytes())
    stamp = datetime.fromtimestamp(now_ms() / 1000 - 60, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    for record in doc["Records"]:
        record["eventTime"] = stamp
    return doc


TRACKERS = [
    DataTracker("invoice-writes", "invoices", frozenset({"WRITE"})),
    DataTracker("invoice-all", "invoices", frozenset({"READ", "WRITE"})),
    DataTracker("photos", "photos", frozenset({"READ", "WRITE"})),
]


def test_a_minio_put_maps_to_a_write_on_each_tracker_of_its_bucket() -> None:
    mapped = s3events.to_traces(notification("minio_put_object.json")["Records"], TRACKERS)
    assert [t["tracker_name"] for t in mapped.traces] == ["invoice-writes", "invoice-all"]
    trace = mapped.traces[0]
    assert trace["trace_name"] == "PUT.OBJECT" and trace["trace_type"] == "ObsAPI"
    assert trace["service_type"] == "OBS" and trace["resource_type"] == "object"
    assert trace["resource_name"] == "invoices/2026/12/INV 0042.pdf"  # the key, URL-decoded
    assert trace["user"] == {"name": "finance-uploader", "type": "User"}
    assert trace["source_ip"] == "192.168.20.5" and trace["request_id"] == "187E2E9A3F6C2B41"
    assert trace["endpoint"] == "http://192.168.20.2:9000" and trace["read_only"] is False
    assert trace["message"] == "s3:ObjectCreated:Put" and trace["request"]["s3"]["object"]["size"] == 48213
    assert mapped.traces[0]["trace_id"] != mapped.traces[1]["trace_id"]  # one trace per tracker
    again = s3events.to_traces(notification("minio_put_object.json")["Records"], TRACKERS)
    assert [t["trace_id"] for t in again.traces] == [t["trace_id"] for t in mapped.traces]


def test_reads_go_to_read_trackers_only_and_ceph_names_need_no_prefix() -> None:
    get = s3events.to_traces(notification("minio_get_object.json")["Records"], TRACKERS)
    assert [(t["tracker_name"], t["trace_name"]) for t in get.traces] == [("invoice-all", "GET.OBJECT")]
    assert get.traces[0]["read_only"] is True
    delete = s3events.to_traces(notification("ceph_delete_object.json")["Records"], TRACKERS)
    assert [t["trace_name"] for t in delete.traces] == ["DELETE.OBJECT", "DELETE.OBJECT"]
    assert "source_ip" not in delete.traces[0] and "resource_id" not in delete.traces[0]  # empty in RGW's
    assert delete.traces[0]["user"]["name"] == "finance$cleaner"


def test_other_events_are_ignored_and_unwatched_buckets_record_nothing() -> None:
    doc = notification("minio_put_object.json")
    other = copy.deepcopy(doc["Records"][0])
    other["eventName"] = "s3:Replication:OperationCompletedReplication"
    unwatched = copy.deepcopy(doc["Records"][0])
    unwatched["s3"]["bucket"]["name"] = "scratch"
    mapped = s3events.to_traces([other, unwatched], TRACKERS)
    assert (mapped.traces, mapped.ignored) == ([], 1)
    assert s3events.event_of("s3:ObjectAccessed:GetRetention") == ("READ", "GET.OBJECT_RETENTION")
    assert s3events.event_of("ObjectCreated:SomethingNew") == ("WRITE", "PUT.OBJECT")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda r: r.pop("eventName"), "eventName must be a non-empty string"),
        (lambda r: r["s3"]["bucket"].pop("name"), "s3.bucket.name must be a non-empty string"),
        (lambda r: r["s3"]["object"].update(key=""), "s3.object.key must be a non-empty string"),
        (lambda r: r.update(eventTime="soon"), "eventTime 'soon' is not an ISO 8601 time"),
    ],
)
def test_a_malformed_record_is_named(change: Any, words: str) -> None:
    [record] = notification("minio_put_object.json")["Records"]
    records = [record, copy.deepcopy(record)]
    change(records[1])
    with pytest.raises(BadRequest, match="Records\\[1\\]") as raised:
        s3events.to_traces(records, TRACKERS)
    assert words in str(raised.value)
    with pytest.raises(BadRequest):
        s3events.parse_notification(b'{"EventName": "s3:ObjectCreated:Put"}')


async def create_tracker(api: Api, name: str, bucket: str, events: list[str]) -> None:
    body = {
        "tracker_type": "data",
        "tracker_name": name,
        "data_bucket": {"data_bucket_name": bucket, "data_event": events},
    }
    resp = await api.client.post(f"/v3/{api.project}/tracker", json=body)
    assert resp.status_code == 201, resp.text


async def test_a_minio_event_lands_on_the_matching_data_tracker_only(api: Api) -> None:
    await create_tracker(api, "invoices-write", "invoices", ["WRITE"])
    await create_tracker(api, "invoices-read", "invoices", ["READ"])
    await create_tracker(api, "photos", "photos", ["READ", "WRITE"])
    token = (
        await api.client.post(
            f"/v3/projects/{api.project}/source-tokens", json={"name": "minio", "source": "s3"}
        )
    ).json()["source_token"]["token"]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api.app),
        base_url="http://127.0.0.1:8080",
        headers={"Authorization": f"Bearer {token}"},
    ) as minio:
        path = f"/v3/{api.project}/sources/s3"
        put = await minio.post(path, json=notification("minio_put_object.json"))
        assert put.status_code == 200, put.text
        assert (put.json()["records"], put.json()["accepted"]) == (1, 1)
        again = await minio.post(path, json=notification("minio_put_object.json"))
        assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 1)
        get = await minio.post(path, json=notification("minio_get_object.json"))
        assert get.json()["accepted"] == 1
        bad = notification("minio_get_object.json")
        bad["Records"][0]["eventTime"] = "later"
        refused = await minio.post(path, json=bad)
        assert refused.status_code == 400 and refused.json()["error_msg"].startswith("Records[0]")

    def traces_of(tracker: str) -> Any:
        return api.list(trace_type="data", tracker_name=tracker, limit=50)

    writes = (await traces_of("invoices-write")).json()["traces"]
    assert [(t["trace_name"], t["resource_name"]) for t in writes] == [
        ("PUT.OBJECT", "invoices/2026/12/INV 0042.pdf")
    ]
    assert writes[0]["submitter"]["auth"] == "source" and writes[0]["event_type"] == "data"
    reads = (await traces_of("invoices-read")).json()["traces"]
    assert [t["trace_name"] for t in reads] == ["GET.OBJECT"]
    assert (await traces_of("photos")).json()["traces"] == []
    assert (await api.list(service_type="OBS")).json()["traces"] == []  # no management traces


async def test_a_disabled_tracker_records_nothing_and_the_store_is_not_failed(api: Api) -> None:
    await create_tracker(api, "invoices", "invoices", ["READ", "WRITE"])
    resp = await api.client.put(
        f"/v3/{api.project}/tracker",
        json={"tracker_type": "data", "tracker_name": "invoices", "status": "disabled"},
    )
    assert resp.status_code == 200, resp.text
    put = await api.client.post(f"/v3/{api.project}/sources/s3", json=notification("minio_put_object.json"))
    assert put.status_code == 200 and put.json()["accepted"] == 0 and put.json()["results"] == []
