"""How fast a tracker shows its S3 store failing, and how fast it catches up once the store is back.

``opencts serve`` transfers to moto's S3 server (``OPENCTS_TRANSFER_INTERVAL=1``) through a small TCP
relay of this script's own, which can stop answering without closing anything (a store that hangs: the
case botocore's default timeouts took 86 to 175 s to notice). Traces keep arriving (200 every half second).
Each phase is timed from the moment the store changes until ListTrackers shows it:

1. **hanging**: the relay swallows every byte both ways -> ``status: error`` (``unavailable``); then it
   relays again -> ``enabled``.
2. **stopped**: moto's server stopped (connections refused) -> ``error`` (``unavailable``).
3. **empty**: moto back on its port, emptied by its reset call (the bucket is gone) -> ``noBucket``.
4. **recovery**: the bucket created again -> ``enabled``, then every trace of the log in exactly one file
   (the files read back through the S3 API and counted against the database).

Run: ``.venv/bin/python benchmarks/archive_outage_detection.py [--timeout 5]`` (``OPENCTS_S3_TIMEOUT``).
"""

from __future__ import annotations

import argparse
import socket
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from _measure import console
from _server import scratch_space
from rich.table import Table

from opencts.archive import encoding, layout
from opencts.clock import now_ms
from opencts.testing.ports import free_port
from opencts.testing.s3 import ACCESS_KEY, SECRET_KEY, S3Server
from opencts.testing.server import ServerProcess

BUCKET = "outage-bench"


class Relay:
    """TCP from ``port`` to ``target``; :attr:`hanging` swallows every byte both ways, closing nothing."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.hanging = False
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
        except OSError:
            client.close()  # the store is down: refused, as it would be without the relay
            return
        upstream.settimeout(None)
        swallowed = threading.Event()  # this connection lost bytes: it must never carry any again
        for src, dst in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(src, dst, swallowed), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, swallowed: threading.Event) -> None:
        try:
            while data := src.recv(65536):
                if self.hanging:
                    swallowed.set()
                elif swallowed.is_set():
                    break  # half a request or answer was swallowed: close, as a store that hung would
                else:
                    dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._listener.close()


def trace(n: int) -> dict[str, Any]:
    return {
        "trace_id": str(uuid.uuid4()),
        "trace_name": "createServer",
        "trace_type": "ApiCall",
        "trace_rating": "normal",
        "service_type": ("ECS", "IAM")[n % 2],
        "resource_type": "ecs",
        "resource_id": f"srv-{n}",
        "resource_name": f"web-{n}",
        "time": now_ms() - 5_000,
        "user": {"id": "u" * 32, "name": "alice", "domain": {"id": "d" * 32, "name": "acme"}},
        "source_ip": "10.1.2.3",
        "code": 200,
    }


class Feeder:
    """Posts 200 traces every half second until stopped."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.stop = threading.Event()
        self.pause = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with self.server.client() as client:
            while not self.stop.is_set():
                if self.pause.is_set():
                    self.stop.wait(0.1)
                    continue
                batch = [trace(self.sent + i) for i in range(200)]
                resp = client.post(f"/v3/{self.server.creds.project_id}/traces", json={"traces": batch})
                resp.raise_for_status()
                self.sent += len(batch)
                self.stop.wait(0.5)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()


def tracker(server: ServerProcess) -> dict[str, Any]:
    with server.client() as client:
        resp = client.get(f"/v3/{server.creds.project_id}/trackers", params={"tracker_name": "system"})
        resp.raise_for_status()
        found: dict[str, Any] = resp.json()["trackers"][0]
        return found


def seconds_until(check: Callable[[], bool], limit: float = 300.0) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > limit:
            raise TimeoutError(f"not within {limit:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - started


def archived(api: Any) -> Counter[bytes]:
    found: Counter[bytes] = Counter()
    for page in api.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            key = layout.parse_key(item["Key"])
            if key is not None and key.kind == "trace":
                blob = api.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
                found.update(encoding.decode(blob, key.compress))
    return found


def logged(server: ServerProcess) -> Counter[bytes]:
    with sqlite3.connect(server.data_dir / "opencts.db") as conn:
        rows = conn.execute("SELECT body FROM traces WHERE kind = 'system'")
        return Counter(bytes(r[0]) for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=5.0, help="OPENCTS_S3_TIMEOUT (seconds)")
    args = parser.parse_args()
    moto = S3Server()
    moto.start()
    relay = Relay(moto.port)
    api = boto3.client(
        "s3",
        endpoint_url=moto.url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
    api.create_bucket(Bucket=BUCKET)
    env = {
        "OPENCTS_TRANSFER_INTERVAL": "1",
        "OPENCTS_STORAGE_URL": "s3://",
        "OPENCTS_S3_ENDPOINT": f"http://127.0.0.1:{relay.port}",
        "OPENCTS_S3_ACCESS_KEY": ACCESS_KEY,
        "OPENCTS_S3_SECRET_KEY": SECRET_KEY,
        "OPENCTS_S3_REGION": "us-east-1",
        "OPENCTS_S3_TIMEOUT": str(args.timeout),
    }
    rows: list[tuple[str, str, float]] = []
    expected: Counter[bytes] = Counter()
    found: Counter[bytes] = Counter()
    try:
        with scratch_space("outage-") as scratch, ServerProcess(Path(scratch) / "data", env) as server:
            with server.client() as client:
                resp = client.put(
                    f"/v3/{server.creds.project_id}/tracker",
                    json={
                        "tracker_type": "system",
                        "tracker_name": "system",
                        "obs_info": {"bucket_name": BUCKET},
                    },
                )
                resp.raise_for_status()
            feeder = Feeder(server)
            seconds_until(lambda: sum(archived(api).values()) > 0)

            relay.hanging = True
            took = seconds_until(lambda: tracker(server)["status"] == "error")
            rows.append(("store hanging", f"error ({tracker(server).get('detail')})", took))
            relay.hanging = False
            started = time.monotonic()
            rows.append(
                ("hang over", "enabled", seconds_until(lambda: tracker(server)["status"] == "enabled"))
            )
            feeder.pause.set()  # the files written before the store is emptied are read back now
            seconds_until(lambda: sum(archived(api).values()) >= sum(logged(server).values()))
            rows.append(("hang over", "every trace in a file", time.monotonic() - started))

            before = archived(api)  # the files the reset will take away
            moto.stop()
            feeder.pause.clear()
            took = seconds_until(lambda: tracker(server)["status"] == "error")
            rows.append(("store stopped", f"error ({tracker(server).get('detail')})", took))

            moto.start()
            moto.reset()
            rows.append(
                (
                    "store empty",
                    "noBucket",
                    seconds_until(lambda: tracker(server).get("detail") == "noBucket"),
                )
            )

            api.create_bucket(Bucket=BUCKET)
            started = time.monotonic()
            rows.append(
                ("recovery", "enabled", seconds_until(lambda: tracker(server)["status"] == "enabled"))
            )
            feeder.close()
            expected.update(logged(server))

            def caught_up() -> bool:
                found.clear()
                found.update(before + archived(api))
                return sum(found.values()) >= sum(expected.values())

            seconds_until(caught_up)
            rows.append(("caught up", "every trace in a file", time.monotonic() - started))
    finally:
        relay.close()
        moto.stop()
    table = Table(title=f"S3 outage detection (OPENCTS_S3_TIMEOUT={args.timeout:g} s, two attempts)")
    table.add_column("store")
    table.add_column("tracker shows")
    table.add_column("after (s)", justify="right")
    for what, shows, took in rows:
        table.add_row(what, shows, f"{took:.1f}")
    console.print(table)
    lost = sum((expected - found).values())
    doubled = sum(n - 1 for n in found.values() if n > 1)
    console.print(
        f"traces posted: {feeder.sent}; in files: {sum(found.values())}; lost: {lost}; doubled: {doubled}"
    )


if __name__ == "__main__":
    main()
