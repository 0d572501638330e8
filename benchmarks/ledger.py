"""The Merkle ledger's costs: leaves appended per second, and proof latency in a tree of a million leaves.

The ledger is a consumer, so its append rate is what must keep up with ingest (it does not slow the
append transaction itself). Appends go through :func:`opencts.ledger.repository.append_traces` in the
consumer's batch size on a SQLite file, with trace bodies of a realistic size (~600 bytes); proofs are
built from the stored tiles as the API builds them (leaf index lookup, audit path, checkpoint row).

    python benchmarks/ledger.py [--leaves 1000000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

from _measure import console, percentile
from sqlalchemy import func, select

from opencts.iam.secrets import SecretBox
from opencts.ledger import repository, tiles
from opencts.ledger.consumer import LedgerConsumer
from opencts.ledger.hashing import consistency_proof, inclusion_proof, leaf_hash, verify_inclusion
from opencts.ledger.repository import NoteSigner
from opencts.store import Database, migrate
from opencts.store.tables import ledger_tiles

BODY = (
    b'{"trace_id":"%08d","trace_name":"createServer","service_type":"ECS","user":{"name":"alice"},'
    + b"x" * 500
    + b"}"
)
PROOFS = 2_000


def append_all(db: Database, leaves: int) -> float:
    """Seconds to append ``leaves`` bodies in consumer-sized batches, one transaction per batch."""
    batch = LedgerConsumer.batch_size
    started = time.perf_counter()
    for start in range(0, leaves, batch):
        rows = [(seq + 1, BODY % seq) for seq in range(start, min(start + batch, leaves))]
        db.write_sync(lambda conn, r=rows: repository.append_traces(conn, "p", r, 0))  # type: ignore[misc]
    return time.perf_counter() - started


def proof_latencies(db: Database, leaves: int, signer: NoteSigner) -> tuple[list[float], list[float]]:
    rng = random.Random(1)
    checkpoint = db.write_sync(lambda conn: repository.make_checkpoint(conn, "p", signer, 0))
    assert checkpoint is not None
    inclusion, consistency = [], []
    for _ in range(PROOFS):
        seq = rng.randrange(leaves) + 1
        t0 = time.perf_counter()

        def prove(conn: object, s: int = seq) -> tuple[int, list[bytes]]:
            index = tiles.leaf_index(conn, "p", s)  # type: ignore[arg-type]
            assert index is not None
            return index, inclusion_proof(tiles.TileSource(conn, "p"), index, checkpoint.size)  # type: ignore[arg-type]

        index, path = db.read_sync(prove)
        inclusion.append(time.perf_counter() - t0)
        assert verify_inclusion(leaf_hash(BODY % (seq - 1)), index, checkpoint.size, path, checkpoint.root)
        first = rng.randrange(1, leaves)
        t0 = time.perf_counter()
        db.read_sync(lambda conn, f=first: consistency_proof(tiles.TileSource(conn, "p"), f, leaves))  # type: ignore[misc]
        consistency.append(time.perf_counter() - t0)
    return inclusion, consistency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--postgres", help="a PostgreSQL URL to measure instead of a SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.postgres or f"sqlite:///{Path(tmp) / 'ledger.db'}"
        db = Database(url)
        migrate.upgrade(db)
        seconds = append_all(db, args.leaves)
        rows = db.read_sync(
            lambda conn: conn.execute(select(func.count()).select_from(ledger_tiles)).scalar()
        )
        console.print(
            f"appended {args.leaves:,} leaves in {seconds:.1f}s:"
            f" [bold]{args.leaves / seconds:,.0f} leaves/s[/bold]"
            f" ({rows:,} tile rows, {args.leaves / max(rows or 1, 1):.0f} leaves per row)"
        )
        signer = NoteSigner(SecretBox(os.urandom(32)), "opencts.bench", 90)
        inclusion, consistency = proof_latencies(db, args.leaves, signer)
        for name, values in (("inclusion proof", inclusion), ("consistency proof", consistency)):
            console.print(
                f"{name} at {args.leaves:,} leaves: p50 {percentile(values, 50) * 1000:.2f} ms,"
                f" p99 {percentile(values, 99) * 1000:.2f} ms"
            )
        db.close()


if __name__ == "__main__":
    main()
