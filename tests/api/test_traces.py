"""The traces API end to end, in process, against a real SQLite file."""

from __future__ import annotations

import asyncio
import csv
import io
import threading
from pathlib import Path

import orjson
import pytest

from cts_helpers import Api, TraceFactory, signed_client
from opencts.api.app import create_app
from opencts.clock import now_ms
from opencts.config import Settings
from opencts.iam.bootstrap import read_credentials
from opencts.testing.waiting import until


async def test_ingest_reports_each_trace_and_keeps_the_good_ones(api: Api, make_trace: TraceFactory) -> None:
    good, bad = make_trace(), make_trace(trace_rating="severe")
    resp = await api.put([good, bad, make_trace(trace_id=good["trace_id"])])
    assert resp.status_code == 200
    data = resp.json()
    assert (data["accepted"], data["duplicates"], data["rejected"]) == (1, 1, 1)
    assert [r["status"] for r in data["results"]] == ["accepted", "rejected", "duplicate"]
    assert "trace_rating" in data["results"][1]["reason"]
    listed = (await api.list(trace_id=good["trace_id"])).json()
    assert listed["meta_data"]["count"] == 1


async def test_a_retried_batch_creates_no_duplicates(api: Api, make_trace: TraceFactory) -> None:
    batch = [make_trace() for _ in range(50)]
    first = (await api.put(batch)).json()
    second = (await api.put(batch)).json()
    assert first["accepted"] == 50
    assert (second["accepted"], second["duplicates"]) == (0, 50)
    assert (await api.list(limit=200)).json()["meta_data"]["count"] == 50


async def test_traces_are_visible_as_soon_as_ingest_answers(api: Api, make_trace: TraceFactory) -> None:
    trace = make_trace()
    await api.put([trace])
    body = (await api.list()).json()
    assert [t["trace_id"] for t in body["traces"]] == [trace["trace_id"]]


async def test_list_returns_the_types_the_sdk_expects(api: Api, make_trace: TraceFactory) -> None:
    await api.put([make_trace(code=404, request={"a": 1}, message="m")])
    trace = (await api.list()).json()["traces"][0]
    assert trace["code"] == "404"
    assert trace["request"] == '{"a":1}'
    assert isinstance(trace["record_time"], int)
    assert trace["event_type"] == "system" and trace["tracker_name"] == "system"
    assert trace["project_id"] == api.project


async def test_a_batch_with_no_valid_trace_is_a_400_with_reasons(api: Api, make_trace: TraceFactory) -> None:
    resp = await api.put([make_trace(time=1), make_trace(trace_type="Nope")])
    assert resp.status_code == 400
    data = resp.json()
    assert data["error_code"] == "CTS.0001"
    assert data["rejected"] == 2 and len(data["results"]) == 2


async def test_traces_outside_the_time_window_are_rejected(api: Api, make_trace: TraceFactory) -> None:
    now = now_ms()
    resp = await api.put(
        [make_trace(time=now - 8 * 86_400_000), make_trace(time=now + 3_600_000), make_trace()]
    )
    reasons = [r.get("reason", "") for r in resp.json()["results"]]
    assert "retention" in reasons[0] and "future" in reasons[1] and reasons[2] == ""


@pytest.mark.parametrize(
    ("content", "status", "code", "message"),
    [
        (b"{not json", 400, "CTS.0002", "not valid JSON"),
        (b"[]", 400, "CTS.0002", "JSON object"),
        (b'{"traces": {}}', 400, "CTS.0002", "JSON object"),
        (b'{"traces": []}', 400, "CTS.0001", "at least one"),
    ],
)
async def test_malformed_bodies(api: Api, content: bytes, status: int, code: str, message: str) -> None:
    resp = await api.client.post(
        f"/v3/{api.project}/traces", content=content, headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == status
    assert resp.json()["error_code"] == code
    assert message in resp.json()["error_msg"]
    assert resp.headers["x-request-id"] == resp.json()["request_id"]


async def test_batch_limits(api: Api, make_trace: TraceFactory) -> None:
    too_many = await api.put([make_trace() for _ in range(1001)])
    assert too_many.status_code == 400 and "at most 1000" in too_many.json()["error_msg"]
    huge = make_trace(request="x" * (5 * 1024 * 1024))
    too_big = await api.put([huge])
    assert too_big.status_code == 413 and too_big.json()["error_code"] == "CTS.0413"
    assert (await api.list()).json()["meta_data"]["count"] == 0


async def test_wrong_content_type_is_415(api: Api) -> None:
    resp = await api.client.post(
        f"/v3/{api.project}/traces",
        content=b"a=b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 415 and resp.json()["error_code"] == "CTS.0415"


async def test_unknown_routes_methods_and_projects(api: Api) -> None:
    missing = await api.client.get("/v3/nope")
    assert missing.status_code == 404 and missing.json()["error_code"] == "CTS.0404"
    assert "x-request-id" in missing.headers
    wrong_method = await api.client.patch(f"/v3/{api.project}/traces")
    assert wrong_method.status_code == 405 and wrong_method.json()["error_code"] == "CTS.0405"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": 201}, "limit"),
        ({"from": 10, "to": 5}, "earlier"),
        ({"trace_type": "audit"}, "trace_type"),
        ({"next": "no-such-marker"}, "marker"),
    ],
)
async def test_bad_list_parameters_are_400(api: Api, params: dict[str, object], message: str) -> None:
    resp = await api.list(**params)
    assert resp.status_code == 400
    assert message in resp.json()["error_msg"]


async def test_every_filter_alone_and_combined(api: Api, make_trace: TraceFactory) -> None:
    base = make_trace()
    special = make_trace(
        service_type="VPC",
        user={"name": "bob", "access_key_id": "AKBOB"},
        resource_id="vpc-1",
        resource_name="Prod VPC/1",
        resource_type="vpc",
        trace_name="deleteVpc",
        trace_rating="incident",
        enterprise_project_id="ep-1",
    )
    data = make_trace(trace_type="ObsAPI", service_type="OBS", tracker_name="bucket-audit")
    tracker = {
        "tracker_type": "data",
        "tracker_name": "bucket-audit",
        "data_bucket": {"data_bucket_name": "logs"},
    }
    assert (await api.client.post(f"/v3/{api.project}/tracker", json=tracker)).status_code == 201
    assert (await api.put([base, special, data])).json()["accepted"] == 3
    filters = {
        "service_type": "VPC",
        "user": "bob",
        "resource_id": "vpc-1",
        "resource_name": "Prod VPC/1",
        "resource_type": "vpc",
        "trace_name": "deleteVpc",
        "trace_rating": "incident",
        "access_key_id": "AKBOB",
        "enterprise_project_id": "ep-1",
    }
    for name, value in filters.items():
        ids = [t["trace_id"] for t in (await api.list(**{name: value})).json()["traces"]]
        assert ids == [special["trace_id"]], name
    combined = await api.list(service_type="VPC", user="bob", trace_rating="incident")
    assert [t["trace_id"] for t in combined.json()["traces"]] == [special["trace_id"]]
    assert (await api.list(service_type="VPC", user="alice")).json()["traces"] == []
    data_list = (await api.list(trace_type="data", tracker_name="bucket-audit")).json()["traces"]
    assert [t["trace_id"] for t in data_list] == [data["trace_id"]]
    system_ids = {t["trace_id"] for t in (await api.list(limit=200)).json()["traces"]}
    assert data["trace_id"] not in system_ids


async def test_paging_walks_back_in_time_without_gaps_or_repeats(api: Api, make_trace: TraceFactory) -> None:
    now = now_ms()
    # several traces share a millisecond, so the marker must order by more than time
    traces = [make_trace(time=now - 60_000 + (i // 3)) for i in range(95)]
    await api.put(traces)
    seen: list[str] = []
    times: list[int] = []
    marker = None
    pages = 0
    while True:
        params = {"limit": 10, **({"next": marker} if marker else {})}
        body = (await api.list(**params)).json()
        seen += [t["trace_id"] for t in body["traces"]]
        times += [t["time"] for t in body["traces"]]
        pages += 1
        marker = body["meta_data"]["marker"]
        if marker is None:
            break
    assert pages == 10
    assert sorted(seen) == sorted(t["trace_id"] for t in traces)
    assert times == sorted(times, reverse=True)


async def test_from_and_to_are_exclusive(api: Api, make_trace: TraceFactory) -> None:
    t = now_ms() - 10_000
    trace = make_trace(time=t)
    await api.put([trace])
    assert (await api.list(**{"from": t, "to": t + 5})).json()["traces"] == []
    assert (await api.list(**{"from": t - 5, "to": t})).json()["traces"] == []
    assert len((await api.list(**{"from": t - 1, "to": t + 1})).json()["traces"]) == 1


async def test_export_streams_every_match_as_csv_and_ndjson(api: Api, make_trace: TraceFactory) -> None:
    batch = [make_trace(resource_name=f'name, with "quotes" {i}') for i in range(120)]
    await api.put(batch)
    resp = await api.client.get(
        f"/v3/{api.project}/traces/export", params={"format": "csv", "from": now_ms() - 3_600_000}
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(resp.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["Trace Name", "Resource Type", "Trace Source"]
    assert len(rows) == 121
    assert {r[4] for r in rows[1:]} == {t["resource_name"] for t in batch}
    nd = await api.client.get(f"/v3/{api.project}/traces/export", params={"format": "ndjson"})
    lines = [orjson.loads(line) for line in nd.content.splitlines()]
    assert len(lines) == 120 and lines[0]["trace_id"]
    bad = await api.client.get(f"/v3/{api.project}/traces/export", params={"format": "xml"})
    assert bad.status_code == 400


async def test_health_and_openapi(api: Api) -> None:
    assert (await api.client.get("/health")).json()["status"] == "ok"
    spec = (await api.client.get("/openapi.json")).json()
    assert "/v3/{project_id}/traces" in spec["paths"]


async def test_overload_is_a_429_with_retry_after_and_loses_nothing(
    tmp_path: Path, make_trace: TraceFactory
) -> None:
    settings = Settings(data_dir=tmp_path / "data", bind="127.0.0.1:8080", max_pending_writes=1)
    app = create_app(settings, start_consumers=False)
    async with app.router.lifespan_context(app):
        creds = read_credentials(settings.credentials_path)
        services = app.state.services
        async with signed_client(app, creds, "http://127.0.0.1:8080") as client:
            traces = [make_trace() for _ in range(4)]
            url = f"/v3/{creds.project_id}/traces"
            # the key's first use records its last_used (a write of its own): done before the lane is held
            assert (await client.get(url, params={"limit": 1})).status_code == 200
            await services.authenticator.close()
            release = threading.Event()
            blocker = asyncio.create_task(services.db.write(lambda conn: release.wait(5)))
            await until(lambda: services.db.pending_writes == 1)
            # one batch waits on the blocked writer, one queues behind it, the rest are refused
            sends = [asyncio.create_task(client.post(url, json={"traces": [traces[0]]}))]
            await until(lambda: services.db.pending_writes == 2)  # the first one's write waits its turn
            sends += [asyncio.create_task(client.post(url, json={"traces": [t]})) for t in traces[1:]]
            # the two refusals come back while the writer is still held; wait for them, not for a time
            await until(lambda: sum(task.done() for task in sends) >= 2)
            release.set()
            await blocker
            answers = await asyncio.gather(*sends)
            refused = [t for t, r in zip(traces, answers, strict=True) if r.status_code == 429]
            assert len(refused) == 2
            for resp in answers:
                if resp.status_code == 429:
                    assert resp.headers["retry-after"] == "1"
                    assert resp.json()["error_code"] == "CTS.0429"
                else:
                    assert resp.json()["accepted"] == 1
            retried = await client.post(url, json={"traces": refused})
            assert retried.json()["accepted"] == 2
            listed = await client.get(url, params={"limit": 10})
            assert listed.json()["meta_data"]["count"] == 4


async def test_nul_characters_are_rejected_per_trace(api: Api, make_trace: TraceFactory) -> None:
    good, literal = make_trace(), make_trace(message="a literal \\u0000 is fine")
    resp = await api.put([make_trace(resource_name="bad\x00name"), good, literal])
    results = resp.json()["results"]
    assert [r["status"] for r in results] == ["rejected", "accepted", "accepted"]
    assert "NUL" in results[0]["reason"]
