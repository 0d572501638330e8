"""An S3 outage of a minute against moto's server: the tracker shows the error, and catches up after.

The store goes away (moto stopped: unreachable), comes back on the same port empty (moto keeps buckets in
this process's memory, so its reset call empties the store: the bucket is gone, ``noBucket``), and the
operator recreates the bucket. Traces keep arriving throughout. Afterwards the files written before the
outage plus those written after hold every trace exactly once. With ``OPENCTS_S3_TIMEOUT`` at its default
a refused store shows within seconds; the whole test takes about 75 s, most of it the minute of outage.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cts_helpers import TraceFactory
from opencts.archive import encoding, layout
from opencts.testing.s3 import ACCESS_KEY, SECRET_KEY, S3Server, s3_client
from opencts.testing.server import ServerProcess
from opencts.testing.waiting import wait_for

pytestmark = [pytest.mark.slow]

BUCKET = "outage-bucket"
OUTAGE_S = 60


@pytest.fixture
def moto() -> Iterator[S3Server]:
    """An S3 server of this test's own: it is stopped and restarted on its port."""
    with S3Server() as server:
        yield server


def s3(moto: S3Server) -> Any:
    return s3_client(moto.url)


def s3_env(moto: S3Server) -> dict[str, str]:
    return {
        "OPENCTS_TRANSFER_INTERVAL": "1",
        "OPENCTS_STORAGE_URL": "s3://",
        "OPENCTS_S3_ENDPOINT": moto.url,
        "OPENCTS_S3_ACCESS_KEY": ACCESS_KEY,
        "OPENCTS_S3_SECRET_KEY": SECRET_KEY,
        "OPENCTS_S3_REGION": "us-east-1",
    }


def objects(moto: S3Server) -> dict[str, bytes]:
    api = s3(moto)
    keys = [
        o["Key"]
        for page in api.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for o in page.get("Contents", [])
    ]
    return {key: api.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys}


def tracker(server: ServerProcess) -> dict[str, Any]:
    with server.client() as client:
        resp = client.get(f"/v3/{server.creds.project_id}/trackers", params={"tracker_name": "system"})
        assert resp.status_code == 200, resp.text
        found: dict[str, Any] = resp.json()["trackers"][0]
        return found


def post(server: ServerProcess, make_trace: TraceFactory, count: int = 200) -> None:
    with server.client() as client:
        traces = [make_trace(service_type=("IAM", "ECS")[i % 2]) for i in range(count)]
        resp = client.post(f"/v3/{server.creds.project_id}/traces", json={"traces": traces})
        assert resp.status_code == 200, resp.text


def bodies(server: ServerProcess) -> list[bytes]:
    with sqlite3.connect(server.data_dir / "opencts.db") as conn:
        rows = conn.execute(
            "SELECT body FROM traces WHERE project_id = ? AND kind = 'system'", (server.creds.project_id,)
        )
        return [bytes(r[0]) for r in rows]


def test_an_outage_of_a_minute_is_shown_and_caught_up(
    moto: S3Server, tmp_path: Path, make_trace: TraceFactory
) -> None:
    s3(moto).create_bucket(Bucket=BUCKET)
    with ServerProcess(tmp_path / "data", s3_env(moto)) as server:
        with server.client() as client:
            resp = client.put(
                f"/v3/{server.creds.project_id}/tracker",
                json={
                    "tracker_type": "system",
                    "tracker_name": "system",
                    "obs_info": {"bucket_name": BUCKET},
                },
            )
            assert resp.status_code == 200, resp.text
        post(server, make_trace)
        wait_for(lambda: len(objects(moto)) > 0, 30, "the first files")
        before = objects(moto)

        moto.stop()
        started = time.monotonic()
        post(server, make_trace)
        wait_for(lambda: tracker(server)["status"] == "error", 30, "the tracker to show the outage")
        assert tracker(server)["detail"] == "unavailable"
        refused = time.monotonic() - started
        moto.start()  # back on the same port, then emptied: the bucket is gone
        moto.reset()
        post(server, make_trace)
        wait_for(lambda: tracker(server).get("detail") == "noBucket", 30, "the tracker to show noBucket")
        shown = time.monotonic() - started
        while (left := OUTAGE_S - (time.monotonic() - started)) > 0:
            post(server, make_trace, 50)
            time.sleep(min(2.0, left))
        assert tracker(server)["detail"] == "noBucket"

        s3(moto).create_bucket(Bucket=BUCKET)
        back = time.monotonic()
        wait_for(lambda: tracker(server)["status"] == "enabled", 60, "the tracker to recover")
        recovered = time.monotonic() - back
        expected = bodies(server)
        found: list[bytes] = []

        def complete() -> bool:
            found.clear()
            for key, blob in {**before, **objects(moto)}.items():
                parsed = layout.parse_key(key)
                assert parsed is not None, key
                found.extend(encoding.decode(blob, parsed.compress))
            return len(found) >= len(expected)

        wait_for(complete, 60, "every trace in a file")
    assert Counter(found) == Counter(expected)
    print(f"outage shown after {refused:.1f} s, noBucket after {shown:.1f} s, recovered in {recovered:.1f} s")  # noqa: T201
