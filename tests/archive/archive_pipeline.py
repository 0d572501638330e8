"""An archive written by the real pipeline, hour by hour under a fixed clock: the transfer writes the files,
the ledger appends and signs checkpoints, the digest writer chains the hours. One or more projects of one
account, each with its management tracker transferring (with validation) to the same bucket."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

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
    def __init__(self, db: Database, tmp_path: Path, *, projects: Sequence[str] = (PROJECT,)) -> None:
        self.db, self.tmp_path = db, tmp_path
        self.projects = list(projects)
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
            for n, project in enumerate(self.projects):
                conn.execute(
                    insert(projects).values(id=project, domain_id=DOMAIN, name=f"r{n + 1}", created_at=1)
                )
                repository.create_system_tracker(conn, project_id=project, domain_id=DOMAIN)
                body = UpdateTrackerRequestBody.model_validate(
                    {
                        "tracker_type": "system",
                        "tracker_name": "system",
                        "obs_info": {"bucket_name": BUCKET},
                        "is_support_validate": True,
                    }
                )
                repository.update_tracker(conn, project_id=project, body=body)

        self.db.write_sync(create)

    def append(self, at: int, count: int, tag: str, project: str = PROJECT) -> None:
        rows = [
            trace_row(f"{tag}-{i}", project_id=project, time=at + i, record_time=at + i) for i in range(count)
        ]
        self.db.write_sync(lambda c: trace_log.append(c, rows))

    def to_ledger(self, at: int) -> None:
        def run(conn: Connection) -> None:
            for project in self.projects:
                last = ledger.tree(conn, project).last_seq
                rows = conn.execute(
                    select(traces.c.seq, traces.c.project_id, traces.c.body)
                    .where(traces.c.project_id == project, traces.c.seq > last)
                    .order_by(traces.c.seq)
                ).all()
                ledger.append_log_rows(conn, rows, at)
                ledger.make_checkpoint(conn, project, self.signer, at)

        self.db.write_sync(run)

    async def transfer(self, at: int) -> None:
        await Transfer(self.db, self.store, self.settings, clock=lambda: at).drain()

    async def hour(self, start: int, count: int, tag: str, *, behind: str | None = None) -> None:
        """One hour: its digest writer round, ``count`` traces of each project (tag ``tag``, then
        ``tag-N`` for the N-th other project), the ledger, and the transfer."""
        self.now = start + MINUTE_MS
        await self.writer.run_once()
        for n, project in enumerate(self.projects):
            self.append(start + 5 * MINUTE_MS, count, tag if n == 0 else f"{tag}-{n}", project)
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
