"""CTS v3 trackers, quotas, operations, catalogues, bucket checks and tags, in process over signed HTTP."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest

from cts_helpers import Api, TraceFactory, create_member, signed_client
from opencts.api import cts
from opencts.consumers import ConsumerRunner
from opencts.store import Database
from opencts.trackers.catalogue import CatalogueConsumer
from opencts.trackers.repository import list_tags

JSON = {"Content-Type": "application/json"}


def url(api: Api, path: str) -> str:
    return f"/v3/{api.project}/{path}"


def data_tracker(name: str = "obs-watch", **extra: Any) -> dict[str, Any]:
    return {
        "tracker_type": "data",
        "tracker_name": name,
        "data_bucket": {"data_bucket_name": "watched", "data_event": ["WRITE"]},
        **extra,
    }


async def create(api: Api, body: dict[str, Any]) -> httpx.Response:
    return await api.client.post(url(api, "tracker"), json=body)


async def trackers(api: Api, **params: str) -> list[dict[str, Any]]:
    resp = await api.client.get(url(api, "trackers"), params=params)
    assert resp.status_code == 200, resp.text
    found: list[dict[str, Any]] = resp.json()["trackers"]
    return found


def assert_error(resp: httpx.Response, status: int, code: str, message: str = "") -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error_code"] == code
    assert message in body["error_msg"]
    assert resp.headers["x-request-id"]


def db_of(api: Api) -> Database:
    db: Database = api.app.state.services.db
    return db


async def test_every_project_starts_with_its_management_tracker(api: Api) -> None:
    [system] = await trackers(api)
    assert (system["tracker_name"], system["tracker_type"]) == ("system", "system")
    assert system["status"] == "enabled"
    assert system["project_id"] == api.project and system["domain_id"] == api.creds.domain_id
    assert isinstance(system["create_time"], int) and len(system["id"]) == 36


async def test_create_list_round_trip(api: Api) -> None:
    body = data_tracker(
        is_lts_enabled=True,
        obs_info={
            "bucket_name": "trace-out",
            "file_prefix_name": "x",
            "bucket_lifecycle": 60,
            "compress_type": "json",
        },
    )
    resp = await create(api, body)
    assert resp.status_code == 201, resp.text
    made = resp.json()
    assert made["tracker_name"] == "obs-watch" and made["status"] == "enabled"
    assert made["lts"] == {"is_lts_enabled": True, "log_group_name": "CTS", "log_topic_name": "obs-watch"}
    assert made["obs_info"]["bucket_lifecycle"] == 60 and made["obs_info"]["is_authorized_bucket"] is True
    assert made["data_bucket"] == {
        "data_bucket_name": "watched",
        "search_enabled": True,
        "data_event": ["WRITE"],
    }
    [listed] = await trackers(api, tracker_name="obs-watch")
    assert listed["group_id"] and listed["stream_id"]
    assert {k: v for k, v in listed.items() if k not in ("group_id", "stream_id")} == made
    assert [t["tracker_name"] for t in await trackers(api, tracker_type="data")] == ["obs-watch"]
    assert [t["tracker_name"] for t in await trackers(api, tracker_type="system")] == ["system"]
    assert await trackers(api, tracker_name="nope") == []
    assert_error(await api.client.get(url(api, "trackers"), params={"tracker_type": "x"}), 400, "CTS.0001")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"tracker_type": "system", "tracker_name": "other"}, "must be named 'system'"),
        ({"tracker_type": "data", "tracker_name": "x"}, "data_bucket_name"),
        (data_tracker("system"), "management tracker's name"),
        (data_tracker("bad name"), "tracker_name"),
        (data_tracker(kms_id="k1"), "only to the management tracker"),
        (data_tracker(is_organization_tracker=True), "only to the management tracker"),
        (data_tracker(obs_info={"bucket_name": "NO"}), "obs_info.bucket_name"),
        (data_tracker(obs_info={"bucket_name": "fine", "compress_type": "rar"}), "compress_type"),
        (data_tracker(is_lts_enabled="yes"), "is_lts_enabled"),
        (data_tracker(unknown=1), "unknown: is not a field"),
        ({"tracker_name": "x"}, "tracker_type: is required"),
    ],
)
async def test_bad_tracker_bodies_are_400s(api: Api, body: dict[str, Any], message: str) -> None:
    assert_error(await create(api, body), 400, "CTS.0001", message)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"{nope", "not valid JSON"), (b"[1]", "JSON object"), (b'"s"', "JSON object")],
)
async def test_malformed_bodies(api: Api, content: bytes, message: str) -> None:
    resp = await api.client.post(url(api, "tracker"), content=content, headers=JSON)
    assert_error(resp, 400, "CTS.0002", message)


async def test_wrong_content_type_and_oversized_bodies(api: Api) -> None:
    resp = await api.client.post(url(api, "tracker"), content=b"x", headers={"Content-Type": "text/plain"})
    assert_error(resp, 415, "CTS.0415")
    big = b'{"tracker_type": "' + b"x" * (1024 * 1024) + b'"}'
    resp = await api.client.post(url(api, "tracker"), content=big, headers=JSON)
    assert resp.status_code == 413


async def test_duplicates_conflict(api: Api) -> None:
    assert (await create(api, data_tracker())).status_code == 201
    assert_error(await create(api, data_tracker(is_lts_enabled=False)), 409, "CTS.0409", "already exists")
    assert_error(await create(api, {"tracker_type": "system", "tracker_name": "system"}), 409, "CTS.0409")


async def test_the_data_tracker_quota_and_list_quotas(api: Api) -> None:
    for i in range(100):
        assert (await create(api, data_tracker(f"t{i:03}"))).status_code == 201
    assert_error(await create(api, data_tracker("t100")), 400, "CTS.0412", "at most 100")
    resp = await api.client.get(url(api, "quotas"))
    assert resp.status_code == 200
    assert resp.json() == {
        "resources": [
            {"type": "system_tracker", "used": 1, "quota": 1},
            {"type": "data_tracker", "used": 100, "quota": 100},
            {"type": "smn_notification", "used": 0, "quota": 100},
        ]
    }


async def test_update(api: Api) -> None:
    await create(api, data_tracker())
    resp = await api.client.put(
        url(api, "tracker"),
        json={
            "tracker_type": "data",
            "tracker_name": "obs-watch",
            "status": "disabled",
            "obs_info": {"bucket_name": "new-out"},
            "data_bucket": {"data_bucket_name": "watched"},
        },
    )
    assert resp.status_code == 200 and resp.json() == {}
    [t] = await trackers(api, tracker_name="obs-watch")
    assert t["status"] == "disabled" and t["obs_info"]["bucket_name"] == "new-out"
    assert t["data_bucket"]["data_event"] == ["WRITE"]
    moved = {
        "tracker_type": "data",
        "tracker_name": "obs-watch",
        "data_bucket": {"data_bucket_name": "other"},
    }
    assert_error(await api.client.put(url(api, "tracker"), json=moved), 400, "CTS.0001", "cannot be changed")
    missing = {"tracker_type": "data", "tracker_name": "ghost", "status": "enabled"}
    assert_error(await api.client.put(url(api, "tracker"), json=missing), 404, "CTS.0404")
    bad = {"tracker_type": "system", "tracker_name": "system", "status": "on"}
    assert_error(await api.client.put(url(api, "tracker"), json=bad), 400, "CTS.0001", "status")
    no_key = {"tracker_type": "system", "tracker_name": "system", "is_support_trace_files_encryption": True}
    assert_error(await api.client.put(url(api, "tracker"), json=no_key), 400, "CTS.0001", "kms_id")


async def test_delete(api: Api) -> None:
    for name in ("a", "b", "c"):
        await create(api, data_tracker(name))
    resp = await api.client.delete(url(api, "trackers"), params={"tracker_name": "a"})
    assert resp.status_code == 200 and resp.json() == {}
    params = {"tracker_name": "a", "tracker_type": "data"}
    again = await api.client.delete(url(api, "trackers"), params=params)
    assert_error(again, 404, "CTS.0404")
    empty = await api.client.delete(url(api, "trackers"), params={"tracker_name": ""})
    assert_error(empty, 400, "CTS.0001", "must not be empty")
    assert (await api.client.delete(url(api, "trackers"))).status_code == 200  # all data trackers
    assert [t["tracker_name"] for t in await trackers(api)] == ["system"]
    bad = await api.client.delete(url(api, "trackers"), params={"tracker_type": "mgmt"})
    assert_error(bad, 400, "CTS.0001", "tracker_type")
    gone = await api.client.delete(url(api, "trackers"), params={"tracker_type": "system"})
    assert gone.status_code == 200 and await trackers(api) == []
    assert (await create(api, {"tracker_type": "system", "tracker_name": "system"})).status_code == 201


async def test_trackers_decide_what_is_recorded(api: Api, make_trace: TraceFactory) -> None:
    def data_trace(tracker: str) -> dict[str, Any]:
        return make_trace(
            trace_type="ObsAPI", service_type="OBS", trace_name="PUT.OBJECT", tracker_name=tracker
        )

    await create(api, data_tracker("reads"))
    resp = await api.put([data_trace("reads"), data_trace("unknown"), make_trace()])
    assert [r["status"] for r in resp.json()["results"]] == ["accepted", "rejected", "accepted"]
    assert "does not exist" in resp.json()["results"][1]["reason"]

    kms = {
        "tracker_type": "system",
        "tracker_name": "system",
        "management_event_selector": {"exclude_service": ["KMS"]},
    }
    assert (await api.client.put(url(api, "tracker"), json=kms)).status_code == 200
    resp = await api.put(
        [make_trace(service_type="KMS", trace_name="createDatakey"), make_trace(service_type="KMS")]
    )
    assert [r["status"] for r in resp.json()["results"]] == ["rejected", "accepted"]

    off = {"tracker_type": "system", "tracker_name": "system", "status": "disabled"}
    assert (await api.client.put(url(api, "tracker"), json=off)).status_code == 200
    resp = await api.put([make_trace()])
    assert resp.status_code == 400
    assert "management tracker is disabled" in resp.json()["results"][0]["reason"]


async def test_list_operations(api: Api) -> None:
    resp = await api.client.get(url(api, "operations"))
    assert resp.status_code == 200
    services = {o["service_type"] for o in resp.json()["operations"]}
    assert {"CTS", "IAM", "ECS", "OBS", "KMS", "SMN", "FunctionGraph"} <= services
    query = {"service_type": "CTS", "resource_type": "tracker"}
    one = await api.client.get(url(api, "operations"), params=query)
    assert one.json() == {
        "operations": [{**query, "operation_list": ["createTracker", "updateTracker", "deleteTracker"]}]
    }
    orphan = await api.client.get(url(api, "operations"), params={"resource_type": "tracker"})
    assert_error(orphan, 400, "CTS.0001", "needs service_type")


async def test_trace_resources_and_users_come_from_the_catalogue(api: Api, make_trace: TraceFactory) -> None:
    user = {"id": "u1", "name": "bob", "domain": {"id": api.creds.domain_id, "name": "x"}}
    await api.put([make_trace(), make_trace(service_type="VPC", resource_type="vpc", user=user)])
    db = db_of(api)
    await ConsumerRunner(db, CatalogueConsumer(db)).drain()
    resp = await api.client.get(f"/v3/{api.creds.domain_id}/resources")
    assert resp.status_code == 200
    resources = {r["service_type"]: r["resource"] for r in resp.json()["resources"]}
    assert resources["ECS"] == ["ecs"] and resources["VPC"] == ["vpc"]
    users = (await api.client.get(url(api, "user-resources"))).json()["users"]
    assert {"name": "alice"} in users and {"name": "bob"} in users
    assert_error(await api.client.get(f"/v3/{'0' * 32}/resources"), 403, "CTS.0403")


async def test_check_obs_buckets(api: Api) -> None:
    path = f"/v3/{api.creds.domain_id}/checkbucket"
    storage = api.app.state.services.storage
    for bucket in ("trace-files", "secret-files"):
        storage.create_bucket(bucket)
    made = await api.client.post(f"/v1.0/{api.project}/kms/create-key", json={"key_alias": "files"})
    key_id = made.json()["key_info"]["key_id"]
    resp = await api.client.post(
        path,
        json={
            "buckets": [
                {"bucket_name": "trace-files", "bucket_location": "cn-north-4"},
                {"bucket_name": "Bad_Bucket", "bucket_location": "cn-north-4"},
                {
                    "bucket_name": "secret-files",
                    "bucket_location": "cn-north-4",
                    "is_support_trace_files_encryption": True,
                },
                {
                    "bucket_name": "secret-files",
                    "bucket_location": "cn-north-4",
                    "is_support_trace_files_encryption": True,
                    "kms_id": key_id,
                },
            ]
        },
    )
    assert resp.status_code == 200, resp.text
    checks = [b["check_bucket_response"] for b in resp.json()["buckets"]]
    assert [c["success"] for c in checks] == [True, False, False, True]
    assert [c["response_code"] for c in checks] == [200, 400, 400, 200]
    assert checks[1]["error_code"] == "InvalidBucketName" and "lower-case" in checks[1]["error_message"]
    assert "kms_id" in checks[2]["error_message"]
    assert resp.json()["buckets"][3]["kms_id"] == key_id
    missing = await api.client.post(path, json={"buckets": [{"bucket_name": "b-b-b"}]})
    assert_error(missing, 400, "CTS.0001", "buckets.0.bucket_location: is required")
    assert_error(await api.client.post(path, json={"buckets": []}), 400, "CTS.0001", "buckets")
    other = await api.client.post(f"/v3/{'0' * 32}/checkbucket", json={"buckets": []})
    assert_error(other, 403, "CTS.0403")


async def test_tags(api: Api) -> None:
    tracker_id = (await create(api, data_tracker())).json()["id"]
    base = url(api, f"cts-tracker/{tracker_id}/tags")
    two = {"tags": [{"key": "env", "value": "prod"}, {"key": "t"}]}
    add = await api.client.post(f"{base}/create", json=two)
    assert add.status_code == 200 and add.json() == {}
    remove = await api.client.request("DELETE", f"{base}/delete", json={"tags": [{"key": "env"}]})
    assert remove.status_code == 200 and remove.json() == {}
    assert db_of(api).read_sync(lambda c: list_tags(c, resource_id=tracker_id)) == {"t": ""}
    many = {"tags": [{"key": f"k{i}", "value": "v"} for i in range(20)]}
    assert_error(await api.client.post(f"{base}/create", json=many), 400, "CTS.0412", "at most 20")
    bad = {"tags": [{"key": "a<b", "value": "v"}]}
    assert_error(await api.client.post(f"{base}/create", json=bad), 400, "CTS.0001", "'<'")
    ghost = url(api, "cts-tracker/00000000-0000-0000-0000-000000000000/tags/create")
    assert_error(await api.client.post(ghost, json={"tags": [{"key": "a", "value": "b"}]}), 404, "CTS.0404")
    wrong = url(api, f"ecs/{tracker_id}/tags/create")
    assert_error(await api.client.post(wrong, json={"tags": [{"key": "a", "value": "b"}]}), 400, "CTS.0001")
    no_body = await api.client.request("DELETE", f"{base}/delete")
    assert_error(no_body, 400, "CTS.0002")


async def test_routes_are_named_after_cts_operations_and_writes_are_audited(api: Api) -> None:
    names = {getattr(r, "name", None) for r in cts.router.routes}
    assert {
        "createTracker",
        "updateTracker",
        "listTrackers",
        "deleteTracker",
        "listQuotas",
        "listOperations",
        "listTraceResources",
        "listUserResources",
        "checkObsBuckets",
        "batchCreateResourceTags",
        "batchDeleteResourceTags",
    } <= names
    await create(api, data_tracker())
    traces = (await api.list(trace_name="createTracker")).json()["traces"]
    assert len(traces) == 1 and traces[0]["service_type"] == "CTS" and traces[0]["code"] == "201"


async def test_authentication_and_permissions(api: Api) -> None:
    bare = httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://127.0.0.1:8080")
    async with bare:
        assert_error(await bare.get(url(api, "trackers")), 401, "CTS.0401")
    domain = api.creds.domain_id

    box = api.app.state.services.box
    reader = db_of(api).write_sync(
        lambda conn: create_member(conn, box, domain, "auditor", "CTS ReadOnlyAccess")
    )
    creds = dataclasses.replace(api.creds, access_key=reader.access_key, secret_key=reader.secret_key)
    async with signed_client(api.app, creds, "http://127.0.0.1:8080") as client:
        assert (await client.get(url(api, "trackers"))).status_code == 200
        assert (await client.get(url(api, "quotas"))).status_code == 200
        assert_error(await client.post(url(api, "tracker"), json=data_tracker()), 403, "CTS.0403")
        assert_error(await client.delete(url(api, "trackers")), 403, "CTS.0403")
        checks = await client.post(f"/v3/{domain}/checkbucket", json={"buckets": []})
        assert_error(checks, 403, "CTS.0403")
