"""Helpers of the LTS sink tests: a project whose system tracker feeds its stream, traces fed through the
``lts`` consumer, sinks made through the repository and a forwarder allowed to reach 127.0.0.1."""

from __future__ import annotations

import os
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import Connection, insert

from cts_helpers import trace_row
from opencts.consumers import ConsumerRunner
from opencts.iam.secrets import SecretBox
from opencts.lts import streams
from opencts.lts.sinks import repository
from opencts.lts.sinks.forwarder import SinkForwarder
from opencts.lts.sinks.model import CreateSinkBody
from opencts.lts.writer import LtsConsumer
from opencts.smn.signing import Signer
from opencts.store import Database, trace_log
from opencts.store.tables import domains, projects
from opencts.trackers import repository as trackers
from opencts.trackers.model import UpdateTrackerRequestBody

DOMAIN, PROJECT = "d" * 32, "p" * 32
T0 = 1_700_000_000_000
BOX = SecretBox(os.urandom(32))
SIGNER = Signer.from_private_key(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def setup_project(database: Database) -> Database:
    """A project whose system tracker transfers to LTS (its stream ``system-trace``)."""

    def setup(conn: Connection) -> None:
        conn.execute(insert(domains).values(id=DOMAIN, name="acme", created_at=1))
        conn.execute(insert(projects).values(id=PROJECT, domain_id=DOMAIN, name="r1", created_at=1))
        trackers.create_system_tracker(conn, project_id=PROJECT, domain_id=DOMAIN)
        body = UpdateTrackerRequestBody.model_validate(
            {"tracker_type": "system", "tracker_name": "system", "is_lts_enabled": True}
        )
        trackers.update_tracker(conn, project_id=PROJECT, body=body)

    database.write_sync(setup)
    return database


def stream_ids() -> tuple[str, str]:
    return streams.group_id(PROJECT), streams.stream_id(PROJECT, streams.SYSTEM_STREAM)


async def feed(db: Database, n: int, *, start: int = 0, **fields: Any) -> list[str]:
    """Append ``n`` traces and copy them into the stream, as the server's ``lts`` consumer does."""
    ids = [f"t-{start + i:05d}" for i in range(n)]
    rows = []
    for i, trace_id in enumerate(ids):
        body = {
            "trace_id": trace_id,
            "trace_name": fields.get("trace_name", "login"),
            "trace_rating": fields.get("trace_rating", "normal"),
            "service_type": fields.get("service_type", "IAM"),
            "resource_type": "user",
            "user": {"name": fields.get("user", "alice")},
            "code": "200",
        }
        rows.append(trace_row(trace_id, time=T0 + start + i, project_id=PROJECT, body=orjson.dumps(body)))
    db.write_sync(lambda c: trace_log.append(c, rows))
    await ConsumerRunner(db, LtsConsumer(db)).drain()
    return ids


def add_sink(db: Database, url: str, **extra: Any) -> dict[str, Any]:
    group, stream = stream_ids()
    body = CreateSinkBody.model_validate(
        {"sink_name": extra.pop("sink_name", "siem"), "sink_type": "ndjson", "endpoint": url, **extra}
    )
    return db.write_sync(
        lambda c: repository.create(
            c, project_id=PROJECT, group_id=group, stream_id=stream, body=body, box=BOX, now=T0
        )
    )


def forwarder(db: Database, owner: str = "node-a:1") -> SinkForwarder:
    f = SinkForwarder(
        db,
        BOX,
        SIGNER,
        cert_url="http://x/cert.pem",
        timeout=5,
        retry_max_seconds=0.2,
        allow_private=True,
        owner=owner,
    )
    f.settle_ms = 0  # the tests write the stream themselves, in one transaction each
    return f


def listing(db: Database) -> list[dict[str, Any]]:
    return db.read_sync(lambda c: repository.list_sinks(c, project_id=PROJECT, now=T0))
