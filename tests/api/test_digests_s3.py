"""Digests in the running app over an S3 server: a data tracker that validates gets its hours' digests,
signed (the signature also as object metadata), and a final digest when the tracker is deleted."""

from __future__ import annotations

from sqlalchemy import Connection

from cts_helpers import TraceFactory, in_process_api
from opencts.archive import digest_format as fmt
from opencts.archive import layout, signing_keys
from opencts.clock import HOUR_MS, now_ms
from opencts.config import Settings
from opencts.consumers import ConsumerRunner
from opencts.ledger import checkpoint, hashing
from opencts.ledger.consumer import LedgerConsumer
from opencts.testing.s3 import s3_client


async def test_a_validating_tracker_gets_signed_hourly_digests_on_s3(
    s3_settings: Settings, make_trace: TraceFactory
) -> None:
    start = now_ms()
    async with in_process_api(s3_settings) as api:
        services = api.app.state.services
        writer = services.digests
        tracker = {
            "tracker_type": "data",
            "tracker_name": "dt",
            "data_bucket": {"data_bucket_name": "watched"},
            "obs_info": {"bucket_name": "audit-bucket", "is_obs_created": True, "file_prefix_name": "pre"},
            "is_support_validate": True,
        }
        assert (await api.client.post(f"/v3/{api.project}/tracker", json=tracker)).status_code == 201
        await writer.run_once()  # the chain starts this hour
        traces = [make_trace(trace_type="ObsAPI", service_type="OBS", tracker_name="dt") for _ in range(4)]
        assert (await api.put(traces)).json()["accepted"] == 4
        await services.transfer.drain()
        await ConsumerRunner(services.db, LedgerConsumer(services.db)).drain()  # the traces become leaves
        writer.clock = lambda: start + 2 * HOUR_MS
        assert await writer.run_once() == 2
        deleted = await api.client.delete(f"/v3/{api.project}/trackers", params={"tracker_name": "dt"})
        assert deleted.status_code == 200
        await writer.run_once()
        writer.clock = lambda: start + 4 * HOUR_MS
        assert await writer.run_once() == 1

        def published(conn: Connection) -> list[signing_keys.PublishedKey]:
            return signing_keys.parse_published({"keys": signing_keys.published_keys(conn)})

        keys = services.db.read_sync(published)

    client = s3_client(s3_settings.s3_endpoint or "")
    listing = client.list_objects_v2(Bucket="audit-bucket")["Contents"]
    names = sorted(o["Key"] for o in listing if (k := layout.parse_key(o["Key"])) and k.kind == "digest")
    assert len(names) == 3

    def verify(fingerprint: str, data: bytes, sig: bytes) -> bool:
        return signing_keys.verify_signature(keys, fingerprint, data, sig)

    chain = []
    for name in names:
        got = client.get_object(Bucket="audit-bucket", Key=name)
        sig = fmt.decode_signature(client.get_object(Bucket="audit-bucket", Key=name + ".sig")["Body"].read())
        assert got["Metadata"]["signature"] == sig.signature
        assert got["Metadata"]["signature-algorithm"] == "Ed25519"
        chain.append(fmt.check_signature(got["Body"].read(), sig, verify))
    assert chain[0].is_start and sum(f.trace_count for f in chain[0].log_files) == 4
    assert chain[1].log_files == () and not chain[1].digest_end
    assert chain[2].digest_end and chain[2].previous_digest_object == chain[1].digest_object
    assert all(
        d.tracker_name == "dt" and "/dt/Digest/pre_CloudTrace-Digest_" in d.digest_object for d in chain
    )
    # the first digest's checkpoint is signed by the ledger's key, and its leaves rebuild its root
    first = chain[0]
    assert first.checkpoint is not None and first.tree_leaves is not None
    assert first.tree_compact_range is not None
    note = checkpoint.verify_note(first.checkpoint, keys[-1].note_verifier_key)
    got = client.get_object(Bucket="audit-bucket", Key=first.tree_leaves.object)
    leaves = fmt.decode_leaves(got["Body"].read())
    compact = [bytes.fromhex(h) for h in first.tree_compact_range]
    assert hashing.extend_range(compact, first.tree_leaves.first_index, leaves) == note.root
