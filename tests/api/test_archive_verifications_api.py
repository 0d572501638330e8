"""``/v3/{project_id}/archive/verifications`` in the running app over an S3 server: a validating tracker's
archive verified on the server, then a trace file overwritten in the bucket (by anyone holding the bucket's
keys) and named by the next run; each run leaves a ``verifyArchive`` trace; errors in the CTS shape; a
read-only user reads results but cannot start a run."""

from __future__ import annotations

from cts_helpers import TraceFactory, create_member, in_process_api, signed_client
from opencts.archive import layout
from opencts.clock import HOUR_MS, now_ms
from opencts.config import Settings
from opencts.consumers import ConsumerRunner
from opencts.iam.bootstrap import BootstrapCredentials
from opencts.iam.permissions import CTS_READ_ONLY
from opencts.ledger.consumer import LedgerConsumer
from opencts.testing.s3 import s3_client

BUCKET = "verified-archive"


async def test_verify_on_the_server_then_a_changed_file_is_named(
    s3_settings: Settings, make_trace: TraceFactory
) -> None:
    start = now_ms()
    asked_only = s3_settings.model_copy(update={"archive_verify_interval": 0})  # the schedule: tests/archive
    async with in_process_api(asked_only) as api:
        services = api.app.state.services
        path = f"/v3/{api.project}/archive/verifications"
        tracker = {
            "tracker_type": "system",
            "tracker_name": "system",
            "obs_info": {"bucket_name": BUCKET, "is_obs_created": True},
            "is_support_validate": True,
        }
        assert (await api.client.put(f"/v3/{api.project}/tracker", json=tracker)).status_code == 200
        early = await api.client.post(path, json={"tracker_name": "system"})
        assert early.status_code == 400 and "no digest file yet" in early.json()["error_msg"]

        await services.digests.run_once()  # the chain starts this hour
        assert (await api.put([make_trace() for _ in range(6)])).json()["accepted"] == 6
        await services.transfer.drain()
        await ConsumerRunner(services.db, LedgerConsumer(services.db)).drain()
        services.digests.clock = lambda: start + 2 * HOUR_MS
        await services.digests.run_once()

        asked = await api.client.post(path, json={"tracker_name": "system"})
        assert asked.status_code == 202, asked.text
        assert asked.json()["status"] == "queued" and asked.json()["requested_by"] == api.creds.user_name
        again = await api.client.post(path, json={"tracker_name": "system", "proofs": True})
        assert again.status_code == 200 and again.json()["id"] == asked.json()["id"]
        await services.verifications.drain()
        done = (await api.client.get(f"{path}/{asked.json()['id']}")).json()
        assert done["status"] == "verified", done
        assert done["digests"] >= 1 and done["files"] >= 1 and done["failure_count"] == 0

        client = s3_client(s3_settings.s3_endpoint or "")
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]]
        victim = next(k for k in keys if (p := layout.parse_key(k)) is not None and p.kind == "trace")
        blob = client.get_object(Bucket=BUCKET, Key=victim)["Body"].read()
        client.put_object(Bucket=BUCKET, Key=victim, Body=blob + b"\n")

        second = await api.client.post(path, json={"tracker_name": "system"})
        assert second.status_code == 202
        await services.verifications.drain()
        listed = (await api.client.get(path, params={"tracker_name": "system"})).json()["verifications"]
        assert [v["status"] for v in listed] == ["failed", "verified"]
        assert [(f["problem"], f["key"]) for f in listed[0]["findings"]] == [
            ("hash value doesn't match", victim)
        ]

        told = (await api.list(trace_name="verifyArchive", trace_type="system")).json()["traces"]
        assert sorted(t["trace_rating"] for t in told) == ["incident", "normal"]
        incident = next(t for t in told if t["trace_rating"] == "incident")
        assert incident["resource_name"] == "system" and victim in incident["message"]

        missing = await api.client.get(f"{path}/nope")
        assert missing.status_code == 404 and missing.json()["error_code"].startswith("CTS.")
        assert "x-request-id" in missing.headers
        unknown = await api.client.post(path, json={"tracker_name": "nope"})
        assert unknown.status_code == 404 and "tracker nope does not exist" in unknown.json()["error_msg"]
        extra = await api.client.post(path, json={"tracker_name": "system", "deep": True})
        assert extra.status_code == 400

        reader = await services.db.write(
            lambda conn: create_member(conn, services.box, api.creds.domain_id, "auditor", CTS_READ_ONLY)
        )
        as_reader = BootstrapCredentials(
            **{**api.creds.__dict__, "access_key": reader.access_key, "secret_key": reader.secret_key}
        )
        async with signed_client(api.app, as_reader, "http://127.0.0.1:8080") as client_:
            assert (await client_.get(path)).status_code == 200
            refused = await client_.post(path, json={"tracker_name": "system"})
        assert refused.status_code == 403 and refused.json()["error_code"] == "CTS.0403"
