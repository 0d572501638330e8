"""CheckObsBuckets tells the truth about a bucket in the configured store (here S3, over HTTP) and about
the key named for encryption."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cts_helpers import in_process_api
from opencts.config import Settings
from opencts.testing.ports import free_port


def _bucket(name: str, **extra: Any) -> dict[str, Any]:
    return {"bucket_name": name, "bucket_location": "cn-north-4", **extra}


async def test_check_obs_buckets_asks_the_store_and_the_key_service(s3_settings: Settings) -> None:
    async with in_process_api(s3_settings) as api:
        services = api.app.state.services
        services.storage.create_bucket("trace-files")
        key_id = (
            await api.client.post(f"/v1.0/{api.project}/kms/create-key", json={"key_alias": "files"})
        ).json()["key_info"]["key_id"]
        encrypted = {"is_support_trace_files_encryption": True}
        resp = await api.client.post(
            f"/v3/{api.creds.domain_id}/checkbucket",
            json={
                "buckets": [
                    _bucket("trace-files"),
                    _bucket("never-created"),
                    _bucket("trace-files", kms_id=key_id, **encrypted),
                    _bucket("trace-files", kms_id="0" * 36, **encrypted),
                ]
            },
        )
        assert resp.status_code == 200, resp.text
        checks = [b["check_bucket_response"] for b in resp.json()["buckets"]]
        assert [c["success"] for c in checks] == [True, False, True, False]
        assert (checks[1]["error_code"], checks[1]["response_code"]) == ("NoSuchBucket", 404)
        assert "never-created" in checks[1]["error_message"]
        assert checks[3]["error_code"] == "KMS.0207"

        await api.client.post(f"/v1.0/{api.project}/kms/disable-key", json={"key_id": key_id})
        resp = await api.client.post(
            f"/v3/{api.creds.domain_id}/checkbucket",
            json={"buckets": [_bucket("trace-files", kms_id=key_id, **encrypted)]},
        )
        check = resp.json()["buckets"][0]["check_bucket_response"]
        assert (check["success"], check["error_code"]) == (False, "KMS.0303")


async def test_an_unreachable_store_is_reported_not_passed(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        ingest_workers=0,
        storage_url="s3://",
        s3_endpoint=f"http://127.0.0.1:{free_port()}",
        s3_access_key="a",
        s3_secret_key="b",
    )
    async with in_process_api(settings) as api:
        resp = await api.client.post(
            f"/v3/{api.creds.domain_id}/checkbucket", json={"buckets": [_bucket("trace-files")]}
        )
        check = resp.json()["buckets"][0]["check_bucket_response"]
        assert (check["success"], check["error_code"], check["response_code"]) == (
            False,
            "ServiceUnavailable",
            503,
        )
