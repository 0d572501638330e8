"""The official ``huaweicloudsdkcts`` CtsClient against a real server process: every non-notification call.

The live server is shared by the whole session, so names are unique per run and assertions never count
what other tests may have created.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcts.v3 import (
    BatchCreateResourceTagsRequest,
    BatchCreateResourceTagsRequestBody,
    BatchDeleteResourceTagsRequest,
    BatchDeleteResourceTagsRequestBody,
    CheckBucketRequest,
    CheckObsBucketsRequest,
    CheckObsBucketsRequestBody,
    CreateTrackerRequest,
    CreateTrackerRequestBody,
    CtsClient,
    DataBucket,
    DeleteTrackerRequest,
    ListOperationsRequest,
    ListQuotasRequest,
    ListTraceResourcesRequest,
    ListTracesRequest,
    ListTrackersRequest,
    ListUserResourcesRequest,
    Tags,
    TrackerObsInfo,
    UpdateTrackerRequest,
    UpdateTrackerRequestBody,
)

from cts_helpers import TraceFactory, admin_sdk_client
from opencts.client.signing import HmacAuth
from opencts.testing.server import ServerProcess
from opencts.testing.waiting import wait_for

pytestmark = [pytest.mark.sdk, pytest.mark.slow]


@pytest.fixture
def client(live_server: ServerProcess) -> Any:
    return admin_sdk_client(CtsClient, live_server)


def put_traces(live_server: ServerProcess, traces: list[dict[str, Any]]) -> None:
    creds = live_server.creds
    auth = HmacAuth(creds.access_key, creds.secret_key, project_id=creds.project_id)
    resp = httpx.post(f"{live_server.url}/v3/{creds.project_id}/traces", json={"traces": traces}, auth=auth)
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == len(traces)


def test_list_traces(client: Any, live_server: ServerProcess, make_trace: TraceFactory) -> None:
    trace = make_trace(code=201, request={"a": 1}, resource_type="ecs")
    put_traces(live_server, [trace])
    resp = client.list_traces(ListTracesRequest(trace_type="system", trace_id=trace["trace_id"]))
    assert resp.meta_data.count == 1
    [got] = resp.traces
    assert got.trace_id == trace["trace_id"] and got.trace_name == "createServer"
    assert got.code == "201" and got.request == '{"a":1}' and got.user.name == "alice"
    assert isinstance(got.record_time, int) and got.service_type == "ECS"


def test_tracker_lifecycle_and_tags(client: Any) -> None:
    name = f"sdk-{uuid.uuid4().hex[:8]}"
    created = client.create_tracker(
        CreateTrackerRequest(
            body=CreateTrackerRequestBody(
                tracker_type="data",
                tracker_name=name,
                is_lts_enabled=True,
                obs_info=TrackerObsInfo(
                    bucket_name="sdk-trace-out",
                    file_prefix_name="sdk",
                    bucket_lifecycle=30,
                    compress_type="gzip",
                    is_sort_by_service=True,
                ),
                data_bucket=DataBucket(data_bucket_name="sdk-watched", data_event=["READ", "WRITE"]),
            )
        )
    )
    assert created.status_code == 201
    assert created.tracker_name == name and created.tracker_type == "data" and created.status == "enabled"
    assert created.id and isinstance(created.create_time, int)
    assert created.lts.is_lts_enabled is True and created.lts.log_topic_name == name
    assert created.obs_info.bucket_name == "sdk-trace-out" and created.obs_info.bucket_lifecycle == 30
    assert created.obs_info.is_authorized_bucket is True
    assert created.data_bucket.data_bucket_name == "sdk-watched"
    assert created.data_bucket.search_enabled is True
    assert created.data_bucket.data_event == ["READ", "WRITE"]

    updated = client.update_tracker(
        UpdateTrackerRequest(
            body=UpdateTrackerRequestBody(
                tracker_type="data",
                tracker_name=name,
                status="disabled",
                data_bucket=DataBucket(data_bucket_name="sdk-watched", data_event=["WRITE"]),
            )
        )
    )
    assert updated.status_code == 200

    [listed] = client.list_trackers(ListTrackersRequest(tracker_name=name)).trackers
    assert listed.id == created.id and listed.status == "disabled"
    assert listed.data_bucket.data_event == ["WRITE"] and listed.group_id and listed.stream_id
    everything = client.list_trackers(ListTrackersRequest()).trackers
    assert everything[0].tracker_name == "system" and everything[0].tracker_type == "system"
    assert everything[0].management_event_selector.exclude_service == []

    tags = [Tags(key="env", value="test"), Tags(key="owner", value="")]
    created_tags = client.batch_create_resource_tags(
        BatchCreateResourceTagsRequest(
            resource_id=created.id,
            resource_type="cts-tracker",
            body=BatchCreateResourceTagsRequestBody(tags=tags),
        )
    )
    assert created_tags.status_code == 200
    deleted_tags = client.batch_delete_resource_tags(
        BatchDeleteResourceTagsRequest(
            resource_id=created.id,
            resource_type="cts-tracker",
            body=BatchDeleteResourceTagsRequestBody(tags=[Tags(key="env")]),
        )
    )
    assert deleted_tags.status_code == 200

    deleted = client.delete_tracker(DeleteTrackerRequest(tracker_name=name, tracker_type="data"))
    assert deleted.status_code == 200
    assert client.list_trackers(ListTrackersRequest(tracker_name=name)).trackers == []


def test_list_quotas(client: Any) -> None:
    resources = {q.type: q for q in client.list_quotas(ListQuotasRequest()).resources}
    assert set(resources) == {"system_tracker", "data_tracker", "smn_notification"}
    assert (resources["system_tracker"].used, resources["system_tracker"].quota) == (1, 1)
    assert resources["data_tracker"].quota == 100 and isinstance(resources["data_tracker"].used, int)


def test_list_operations(client: Any) -> None:
    request = ListOperationsRequest(service_type="CTS", resource_type="tracker")
    [tracker] = client.list_operations(request).operations
    assert tracker.service_type == "CTS" and tracker.resource_type == "tracker"
    assert "createTracker" in tracker.operation_list
    assert len(client.list_operations(ListOperationsRequest()).operations) > 20


def test_trace_resources_and_user_resources(
    client: Any, live_server: ServerProcess, make_trace: TraceFactory
) -> None:
    user = {"id": "u" * 32, "name": "sdk-user", "domain": {"id": live_server.creds.domain_id, "name": "acme"}}
    put_traces(live_server, [make_trace(service_type="DNS", resource_type="zone", user=user)])
    request = ListTraceResourcesRequest(domain_id=live_server.creds.domain_id)
    resources = wait_for(
        lambda: [r for r in client.list_trace_resources(request).resources if r.service_type == "DNS"],
        10,
        "the catalogue to list the DNS resource",
        interval=0.2,
    )
    assert [r.resource for r in resources] == [["zone"]]
    wait_for(
        lambda: any(
            u.name == "sdk-user" for u in client.list_user_resources(ListUserResourcesRequest()).users
        ),
        10,
        "the catalogue to list sdk-user",
        interval=0.2,
    )


def test_check_obs_buckets(client: Any, live_server: ServerProcess) -> None:
    (live_server.data_dir / "buckets" / "good-bucket").mkdir(parents=True, exist_ok=True)
    resp = client.check_obs_buckets(
        CheckObsBucketsRequest(
            domain_id=live_server.creds.domain_id,
            body=CheckObsBucketsRequestBody(
                buckets=[
                    CheckBucketRequest(bucket_name="good-bucket", bucket_location="cn-north-4"),
                    CheckBucketRequest(bucket_name="Bad_Bucket", bucket_location="cn-north-4"),
                ]
            ),
        )
    )
    good, bad = resp.buckets
    assert good.bucket_name == "good-bucket" and good.check_bucket_response.success is True
    assert good.check_bucket_response.response_code == 200
    assert bad.check_bucket_response.success is False
    assert bad.check_bucket_response.error_code == "InvalidBucketName"
    assert bad.is_support_trace_files_encryption is False


def test_errors_reach_the_sdk_as_client_request_exceptions(client: Any) -> None:
    with pytest.raises(ClientRequestException) as info:
        client.create_tracker(
            CreateTrackerRequest(body=CreateTrackerRequestBody(tracker_type="system", tracker_name="system"))
        )
    assert info.value.status_code == 409
    assert info.value.error_code == "CTS.0409"
    assert "already exists" in info.value.error_msg
    assert info.value.request_id
