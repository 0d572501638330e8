"""huaweicloudsdkcts drives the archive's tracker calls on a live server backed by an S3 server (moto);
the trace files that result are listed and read with boto3, as a user would with any S3 client."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from huaweicloudsdkcts.v3 import (
    CheckBucketRequest,
    CheckObsBucketsRequest,
    CheckObsBucketsRequestBody,
    CreateTrackerRequest,
    CreateTrackerRequestBody,
    CtsClient,
    DataBucket,
    DeleteTrackerRequest,
    ListTrackersRequest,
    TrackerObsInfo,
)

from cts_helpers import TraceFactory, admin_sdk_client
from opencts.archive import encoding, layout
from opencts.client.signing import HmacAuth
from opencts.testing.s3 import ACCESS_KEY, SECRET_KEY
from opencts.testing.server import ServerProcess
from opencts.testing.waiting import wait_for

pytestmark = [pytest.mark.sdk, pytest.mark.slow]


def s3(url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )


def listed(url: str, bucket: str) -> dict[str, bytes]:
    client = s3(url)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    return {key: client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def traces_in(files: dict[str, bytes]) -> Counter[str]:
    found: Counter[str] = Counter()
    for key, blob in files.items():
        parsed = layout.parse_key(key)
        if parsed is None or parsed.kind != "trace":
            continue
        for body in encoding.decode(blob, parsed.compress):
            found[httpx.Response(200, content=body).json()["trace_id"]] += 1
    return found


def test_sdk_trackers_produce_files_any_s3_client_lists(
    s3_server: str, tmp_path: Path, make_trace: TraceFactory
) -> None:
    env = {
        "OPENCTS_TRANSFER_INTERVAL": "1",
        "OPENCTS_STORAGE_URL": "s3://",
        "OPENCTS_S3_ENDPOINT": s3_server,
        "OPENCTS_S3_ACCESS_KEY": ACCESS_KEY,
        "OPENCTS_S3_SECRET_KEY": SECRET_KEY,
        "OPENCTS_S3_REGION": "us-east-1",
    }
    s3_url = s3_server
    s3(s3_url).create_bucket(Bucket="mgmt-files")
    with ServerProcess(tmp_path / "data", env) as server:
        client = admin_sdk_client(CtsClient, server)
        client.delete_tracker(DeleteTrackerRequest(tracker_name="system", tracker_type="system"))
        client.create_tracker(
            CreateTrackerRequest(
                body=CreateTrackerRequestBody(
                    tracker_type="system",
                    tracker_name="system",
                    obs_info=TrackerObsInfo(bucket_name="mgmt-files", file_prefix_name="audit"),
                    kms_id="key-for-later",
                    is_support_validate=True,
                )
            )
        )
        client.create_tracker(
            CreateTrackerRequest(
                body=CreateTrackerRequestBody(
                    tracker_type="data",
                    tracker_name="objects",
                    data_bucket=DataBucket(data_bucket_name="watched", data_event=["WRITE"]),
                    obs_info=TrackerObsInfo(
                        bucket_name="data-files",
                        is_obs_created=True,
                        compress_type="json",
                        bucket_lifecycle=30,
                    ),
                )
            )
        )
        checked = client.check_obs_buckets(
            CheckObsBucketsRequest(
                body=CheckObsBucketsRequestBody(
                    buckets=[CheckBucketRequest(bucket_name="mgmt-files", bucket_location="us-east-1")]
                )
            )
        )
        assert checked.buckets[0].check_bucket_response.success is True

        creds = server.creds
        auth = HmacAuth(creds.access_key, creds.secret_key, project_id=creds.project_id)
        management = [make_trace(service_type=("IAM", "ECS")[i % 2]) for i in range(20)]
        data = [
            make_trace(
                trace_type="ObsAPI", service_type="OBS", trace_name="PUT.OBJECT", tracker_name="objects"
            )
            for _ in range(10)
        ]
        resp = httpx.post(
            f"{server.url}/v3/{creds.project_id}/traces", json={"traces": management + data}, auth=auth
        )
        assert resp.status_code == 200, resp.text

        wanted_mgmt = {t["trace_id"] for t in management}
        wanted_data = {t["trace_id"] for t in data}
        wait_for(lambda: wanted_mgmt <= set(traces_in(listed(s3_url, "mgmt-files"))), 60, "management files")
        wait_for(lambda: wanted_data <= set(traces_in(listed(s3_url, "data-files"))), 60, "data files")
        trackers = {t.tracker_name: t for t in client.list_trackers(ListTrackersRequest()).trackers}
        assert trackers["system"].status == "enabled" and trackers["objects"].status == "enabled"

    mgmt_files = listed(s3_url, "mgmt-files")
    keys = [layout.parse_key(k) for k in mgmt_files]
    assert all(k is not None and k.prefix == "audit" and k.service for k in keys)
    assert all(n == 1 for n in traces_in(mgmt_files).values())
    data_files = listed(s3_url, "data-files")
    assert all(k.endswith(".json") for k in data_files)
    assert set(traces_in(data_files)) == wanted_data
