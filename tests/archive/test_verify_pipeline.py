"""``opencts verify`` over an archive written by the real pipeline: the transfer writes the files, the ledger
appends and signs checkpoints, the digest writer chains the hours (a fixed clock makes the hours pass).
The archive verifies, with proofs; a trace changed in the database behind the tree, then transferred, is
named by its trace id once proofs are checked; a file deleted afterwards is named too."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select, update

from cts_helpers import trace_row
from opencts.archive import signing_keys
from opencts.archive.digests import DigestWriter, LedgerReader
from opencts.archive.storage import LocalStore
from opencts.archive.transfer import Transfer
from opencts.archive.verify import Options, Result, verify_source
from opencts.archive.verify_source import keys_from_json, open_source
from opencts.clock import HOUR_MS, MINUTE_MS
from opencts.config import Settings
from opencts.iam.secrets import SecretBox
from opencts.ledger import repository as ledger
from opencts.store import Database, trace_log
from opencts.store.tables import domains, projects, traces
from opencts.trackers import repository
from opencts.trackers.model import UpdateTrackerRequestBody

DOMAIN, PROJECT = "d" * 32, "e" * 32
H0 = 1_780_002_000_000 // HOUR_MS * HOUR_MS
BUCKET = "audit"


def change_body(conn: Connection, trace_id: str) -> None:
    """A stored trace edited in place: another user name (other bytes: another leaf)."""
    body = conn.execute(select(traces.c.body).where(traces.c.trace_id == trace_id)).scalar_one()
    conn.execute(
        update(traces)
        .where(traces.c.trace_id == trace_id)
        .values(body=bytes(body).replace(b"}", b',"user":"mallory"}'))
    )


class Pipeline:
    def __init__(self, db: Database, tmp_path: Path) -> None:
        self.db, self.tmp_path = db, tmp_path
        self.settings = Settings(data_dir=tmp_path / "data", transfer_interval=1)
        self.store = LocalStore(tmp_path / "buckets")
        self.store.create_bucket(BUCKET)
        self.box = SecretBox(os.urandom(32))
        self.signer = ledger.NoteSigner.from_settings(self.settings, self.box)
        self.now = H0 + MINUTE_MS
        self.writer = DigestWriter(
            db,
            self.store,
            region=self.settings.region,
            keys=lambda conn, now: self.signer.key(conn, now),
            ledger=LedgerReader(self.signer),
            clock=lambda: self.now,
        )

    def setup(self) -> None:
        def create(conn: Connection) -> None:
            conn.execute(insert(domains).values(id=DOMAIN, name="acme", created_at=1))
            conn.execute(insert(projects).values(id=PROJECT, domain_id=DOMAIN, name="r1", created_at=1))
            repository.create_system_tracker(conn, project_id=PROJECT, domain_id=DOMAIN)
            body = UpdateTrackerRequestBody.model_validate(
                {
                    "tracker_type": "system",
                    "tracker_name": "system",
                    "obs_info": {"bucket_name": BUCKET},
                    "is_support_validate": True,
                }
            )
            repository.update_tracker(conn, project_id=PROJECT, body=body)

        self.db.write_sync(create)

    def append(self, at: int, count: int, tag: str) -> None:
        rows = [
            trace_row(f"{tag}-{i}", project_id=PROJECT, time=at + i, record_time=at + i) for i in range(count)
        ]
        self.db.write_sync(lambda c: trace_log.append(c, rows))

    def to_ledger(self, at: int) -> None:
        def run(conn: Connection) -> None:
            last = ledger.tree(conn, PROJECT).last_seq
            rows = conn.execute(
                select(traces.c.seq, traces.c.project_id, traces.c.body)
                .where(traces.c.project_id == PROJECT, traces.c.seq > last)
                .order_by(traces.c.seq)
            ).all()
            ledger.append_log_rows(conn, rows, at)
            ledger.make_checkpoint(conn, PROJECT, self.signer, at)

        self.db.write_sync(run)

    async def transfer(self, at: int) -> None:
        await Transfer(self.db, self.store, self.settings, clock=lambda: at).drain()

    async def hour(self, start: int, count: int, tag: str, *, behind: str | None = None) -> None:
        self.now = start + MINUTE_MS
        await self.writer.run_once()
        self.append(start + 5 * MINUTE_MS, count, tag)
        self.to_ledger(start + 6 * MINUTE_MS)
        if behind is not None:  # the row changed after the tree took its leaf, before the transfer
            self.db.write_sync(lambda c: change_body(c, behind))
        await self.transfer(start + 10 * MINUTE_MS)

    async def digests(self, until: int) -> None:
        self.now = until
        await self.writer.run_once()

    def verify(self, *, proofs: bool) -> Result:
        keys = keys_from_json(self.db.read_sync(signing_keys.published_keys))
        with open_source(str(self.store.root / BUCKET), self.settings) as source:
            return verify_source(source, keys, Options(proofs=proofs, workers=2))


async def test_a_pipeline_archive_verifies_and_tampering_is_named(database: Database, tmp_path: Path) -> None:
    pipe = Pipeline(database, tmp_path)
    pipe.setup()
    await pipe.hour(H0, 0, "none")  # the chain starts before the project's first checkpoint
    await pipe.hour(H0 + HOUR_MS, 5, "a")
    await pipe.hour(H0 + 2 * HOUR_MS, 0, "none")
    await pipe.hour(H0 + 3 * HOUR_MS, 4, "b", behind="b-2")
    await pipe.digests(H0 + 4 * HOUR_MS + MINUTE_MS)

    plain = pipe.verify(proofs=False)
    assert plain.ok, plain.failures
    assert plain.digests == 4 and plain.traces == 9

    proved = pipe.verify(proofs=True)
    assert [(f.problem, f.trace_id) for f in proved.failures] == [("trace not in the ledger", "b-2")]
    assert proved.leaves == 9

    first: Any = next((pipe.store.root / BUCKET).rglob("CloudTrace_*.json.gz"))
    first.unlink()
    missing = pipe.verify(proofs=False)
    assert [f.problem for f in missing.failures] == ["not found"]
