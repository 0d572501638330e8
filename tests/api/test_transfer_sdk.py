"""huaweicloudsdkcts drives the archive's tracker calls on a live server backed by an S3 server (moto);
the trace files that result are listed and read with boto3, as a user would with any S3 client."""

from __future__ import annotations

from collections import Counter
from functools import partial
from pathlib import Path

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
from opencts.archive import encoding, envelope, layout
from opencts.client.signing import HmacAuth
from opencts.config import Settings
from opencts.kms.service import KeyService, open_key_service
from opencts.testing.s3 import ACCESS_KEY, SECRET_KEY, s3_client
from opencts.testing.server import ServerProcess
from opencts.testing.waiting import wait_for

pytestmark = [pytest.mark.sdk, pytest.mark.slow]


def listed(url: str, bucket: str) -> dict[str, bytes]:
    client = s3_client(url)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    return {key: client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def traces_in(files: dict[str, bytes], keys: KeyService | None = None) -> Counter[str]:
    found: Counter[str] = Counter()
    for key, blob in files.items():
        parsed = layout.parse_key(key)
        if parsed is None or parsed.kind != "trace":
            continue
        if parsed.encrypted:
            assert keys is not None and envelope.is_envelope(blob)
            blob = envelope.open_envelope(blob, partial(keys.unwrap, parsed.project_id))
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
    s3_client(s3_url).create_bucket(Bucket="mgmt-files")
    with ServerProcess(tmp_path / "data", env) as server:
        client = admin_sdk_client(CtsClient, server)
        creds = server.creds
        auth = HmacAuth(creds.access_key, creds.secret_key, project_id=creds.project_id)
        made = httpx.post(
            f"{server.url}/v1.0/{creds.project_id}/kms/create-key", json={"key_alias": "archive"}, auth=auth
        )
        assert made.status_code == 200, made.text
        kms_id = made.json()["key_info"]["key_id"]
        client.delete_tracker(DeleteTrackerRequest(tracker_name="system", tracker_type="system"))
        client.create_tracker(
            CreateTrackerRequest(
                body=CreateTrackerRequestBody(
                    tracker_type="system",
                    tracker_name="system",
                    obs_info=TrackerObsInfo(bucket_name="mgmt-files", file_prefix_name="audit"),
                    kms_id=kms_id,
                    is_support_trace_files_encryption=True,
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
                domain_id=server.creds.domain_id,
                body=CheckObsBucketsRequestBody(
                    buckets=[CheckBucketRequest(bucket_name="mgmt-files", bucket_location="us-east-1")]
                ),
            )
        )
        assert checked.buckets[0].check_bucket_response.success is True

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
        keys = open_key_service(Settings(data_dir=server.data_dir))
        try:
            wait_for(
                lambda: wanted_mgmt <= set(traces_in(listed(s3_url, "mgmt-files"), keys)),
                60,
                "management files",
            )
            mgmt = traces_in(listed(s3_url, "mgmt-files"), keys)
        finally:
            keys.close()
        wait_for(lambda: wanted_data <= set(traces_in(listed(s3_url, "data-files"))), 60, "data files")
        trackers = {t.tracker_name: t for t in client.list_trackers(ListTrackersRequest()).trackers}
        assert trackers["system"].status == "enabled" and trackers["objects"].status == "enabled"

        # a disabled key stops new files, and the tracker says why
        off = httpx.post(
            f"{server.url}/v1.0/{creds.project_id}/kms/disable-key", json={"key_id": kms_id}, auth=auth
        )
        assert off.status_code == 200, off.text
        late = httpx.post(
            f"{server.url}/v3/{creds.project_id}/traces", json={"traces": [make_trace()]}, auth=auth
        )
        assert late.status_code == 200, late.text

        def system_status() -> tuple[str, str | None]:
            [system] = client.list_trackers(ListTrackersRequest(tracker_name="system")).trackers
            return system.status, system.detail

        wait_for(
            lambda: system_status() == ("error", "kmsKeyDisabled"), 60, "the tracker to show kmsKeyDisabled"
        )

    mgmt_files = listed(s3_url, "mgmt-files")
    names = [layout.parse_key(k) for k in mgmt_files]
    assert all(k is not None and k.prefix == "audit" and k.service and k.encrypted for k in names)
    assert all(n == 1 for n in mgmt.values())
    rules = s3_client(s3_url).get_bucket_lifecycle_configuration(Bucket="data-files")["Rules"]
    assert [(r["Expiration"]["Days"], r["Status"]) for r in rules] == [(30, "Enabled")]
    data_files = listed(s3_url, "data-files")
    assert all(k.endswith(".json") for k in data_files)
    assert set(traces_in(data_files)) == wanted_data
