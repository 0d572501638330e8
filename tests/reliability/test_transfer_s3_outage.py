"""An S3 outage of a minute against moto's server: the tracker shows the error, and catches up after.

The store goes away (moto stopped: unreachable), comes back on the same port empty (the bucket is gone:
``noBucket``), and the operator recreates the bucket. Traces keep arriving throughout. Afterwards the files
written before the outage plus those written after hold every trace exactly once.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from cts_helpers import TraceFactory
from opencts.archive import encoding, layout
from opencts.archive.storage import StorageError, open_store
from opencts.config import Settings
from opencts.testing.ports import free_port
from opencts.testing.server import ServerProcess
from opencts.testing.waiting import wait_for

pytestmark = [pytest.mark.slow]

BUCKET = "outage-bucket"
OUTAGE_S = 60


class Moto:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: ThreadedMotoServer | None = None

    def start(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        )


@pytest.fixture
def moto() -> Iterator[Moto]:
    server = Moto()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def s3_env(moto: Moto) -> dict[str, str]:
    return {
        "OPENCTS_TRANSFER_INTERVAL": "1",
        "OPENCTS_STORAGE_URL": "s3://",
        "OPENCTS_S3_ENDPOINT": moto.url,
        "OPENCTS_S3_ACCESS_KEY": "test",
        "OPENCTS_S3_SECRET_KEY": "test",
        "OPENCTS_S3_REGION": "us-east-1",
    }


def needs_s3(moto: Moto, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        storage_url="s3://",
        s3_endpoint=moto.url,
        s3_access_key="test",
        s3_secret_key="test",
    )
    try:
        open_store(settings)
    except StorageError as exc:
        pytest.skip(f"no S3 store yet: {exc}")


def objects(moto: Moto) -> dict[str, bytes]:
    s3 = moto.client()
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for o in page.get("Contents", [])
    ]
    return {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys}


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
    moto: Moto, tmp_path: Path, make_trace: TraceFactory
) -> None:
    needs_s3(moto, tmp_path)
    moto.client().create_bucket(Bucket=BUCKET)
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
        moto.start()  # back on the same port, empty: the bucket is gone
        post(server, make_trace)
        wait_for(lambda: tracker(server).get("detail") == "noBucket", 30, "the tracker to show noBucket")
        while time.monotonic() - started < OUTAGE_S:
            post(server, make_trace, 50)
            time.sleep(5)
        assert tracker(server)["detail"] == "noBucket"

        moto.client().create_bucket(Bucket=BUCKET)
        wait_for(lambda: tracker(server)["status"] == "enabled", 60, "the tracker to recover")
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
