"""After a restore the archive's digest chain goes on: the next digest links to the last one backed up.

A node with its archive in the data dir (``DATA_DIR/buckets``) writes trace files and two hours of signed
digests; it is backed up and restored into a new data dir, where the restored node unseals its signing
keys with the restored master key, transfers more traces and writes the next hour's digest. The whole
chain in the restored bucket verifies link by link, across the restore.
"""

from __future__ import annotations

from pathlib import Path

from archive.archive_world import two_projects
from archive.test_digests import (
    BUCKET,
    H0,
    Clock,
    append,
    assert_chained,
    chain_of,
    transfer_at,
    validate,
    writer,
)
from opencts.archive.storage import LocalStore
from opencts.backup.restore import restore
from opencts.backup.snapshot import take
from opencts.clock import HOUR_MS, MINUTE_MS
from opencts.config import Settings
from opencts.opening import open_store


async def test_the_digest_chain_continues_after_a_restore(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path / "a")
    opened = open_store(first)
    db = opened.db
    try:
        db.write_sync(two_projects)
        store = LocalStore(first.data_dir / "buckets")
        store.create_bucket(BUCKET)
        clock = Clock(H0 + 10 * MINUTE_MS)
        w = writer(db, store, opened.box, clock)
        validate(db, True)
        assert await w.run_once() == 0
        append(db, H0 + 15 * MINUTE_MS, 3, "a")
        await transfer_at(db, store, tmp_path, H0 + 20 * MINUTE_MS)
        append(db, H0 + HOUR_MS + MINUTE_MS, 2, "b")
        await transfer_at(db, store, tmp_path, H0 + HOUR_MS + 5 * MINUTE_MS)
        clock.now = H0 + 2 * HOUR_MS + MINUTE_MS
        assert await w.run_once() == 2
        before = chain_of(db, store)
        take(first, tmp_path / "bk")  # the node is still open, as a running server's would be
    finally:
        db.close()

    second = Settings(data_dir=tmp_path / "b")
    restore(tmp_path / "bk", second)
    reopened = open_store(second)  # the restored master key unseals the restored signing keys
    db = reopened.db
    try:
        store = LocalStore(second.data_dir / "buckets")
        assert chain_of(db, store) == before
        clock = Clock(H0 + 2 * HOUR_MS + 5 * MINUTE_MS)
        w = writer(db, store, reopened.box, clock)
        append(db, H0 + 2 * HOUR_MS + 2 * MINUTE_MS, 4, "c")
        await transfer_at(db, store, tmp_path, H0 + 2 * HOUR_MS + 10 * MINUTE_MS)
        clock.now = H0 + 3 * HOUR_MS + MINUTE_MS
        assert await w.run_once() == 1
        chain = chain_of(db, store)
        assert len(chain) == 3 and chain[:2] == before
        assert not chain[2][0].is_start, "the restored node continues the chain, it does not start anew"
        assert sum(f.trace_count for f in chain[2][0].log_files) == 4
        assert_chained(chain)
    finally:
        db.close()
