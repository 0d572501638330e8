"""The ledger in the database: tiles, the consumer, checkpoints, and two nodes sharing a PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, select

from cts_helpers import trace_row
from opencts.consumers import ConsumerRunner, get_cursor
from opencts.iam.secrets import SecretBox
from opencts.ledger import repository, tiles
from opencts.ledger.checkpoint import verify_note
from opencts.ledger.consumer import LedgerConsumer, write_checkpoints
from opencts.ledger.hashing import (
    MemoryTree,
    compact_range,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_inclusion,
)
from opencts.ledger.repository import NoteSigner
from opencts.store import Database, migrate, trace_log
from opencts.store.tables import ledger_tiles, traces


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner(SecretBox(os.urandom(32)), "opencts.test", 90)


def test_tiles_answer_like_a_tree_in_memory_across_tile_levels(tmp_path: Path) -> None:
    """66,000 leaves in uneven batches: level-0, level-1 and level-2 tiles, partial ones rewritten."""
    db = Database(f"sqlite:///{tmp_path / 'ledger.db'}")
    migrate.upgrade(db)
    rng = random.Random(3)
    bodies = [f'{{"n":{i}}}'.encode() for i in range(66_000)]
    seqs = [10 + 3 * i for i in range(len(bodies))]
    done = 0
    while done < len(bodies):
        n = min(rng.choice([1, 7, 255, 256, 257, 3000]), len(bodies) - done)
        batch = list(zip(seqs[done : done + n], bodies[done : done + n], strict=True))
        db.write_sync(lambda conn, b=batch: repository.append_traces(conn, "p1", b, 0))  # type: ignore[misc]
        done += n
    leaves = [leaf_hash(b) for b in bodies]
    memory = MemoryTree(leaves)

    def check(conn: Connection) -> None:
        state = repository.tree(conn, "p1")
        assert state.size == len(leaves) and state.root == root(leaves) and state.last_seq == seqs[-1]
        source = tiles.TileSource(conn, "p1")
        for size in (1, 255, 256, 257, 65_535, 65_536, 65_537, 66_000):
            assert tiles.stored_compact_range(conn, "p1", size) == compact_range(memory, size)
            i = rng.randrange(size)
            assert inclusion_proof(source, i, size) == inclusion_proof(memory, i, size)
            m = rng.randint(1, size)
            assert consistency_proof(source, m, size) == consistency_proof(memory, m, size)
        assert tiles.leaf_hashes(conn, "p1", 250, 70_000 - 4_000) == leaves[250:66_000]
        for i in (0, 255, 256, 65_999):
            assert tiles.leaf_index(conn, "p1", seqs[i]) == i
        assert tiles.leaf_index(conn, "p1", seqs[5] + 1) is None and tiles.leaf_index(conn, "p2", 10) is None
        # about one row per 256 leaves: 258 level-0 tiles, 2 at level 1, 1 at level 2
        assert conn.execute(select(func.count()).select_from(ledger_tiles)).scalar() == 258 + 2 + 1

    db.read_sync(check)
    again = list(zip(seqs[-10:], bodies[-10:], strict=True))
    assert db.write_sync(lambda conn: repository.append_traces(conn, "p1", again, 0)) == 0
    db.close()


async def test_the_consumer_appends_each_project_in_seq_order_once(
    database: Database, signer: NoteSigner
) -> None:
    rows = [trace_row(f"t{i}", project_id=f"p{i % 3}") for i in range(50)]
    database.write_sync(lambda conn: trace_log.append(conn, rows))
    assert await ConsumerRunner(database, LedgerConsumer(database)).drain() == 50
    # a second run from the start (a lost cursor, another node) appends nothing
    consumer = LedgerConsumer(database)
    runner = ConsumerRunner(database, consumer)
    runner.position = 0
    await runner.drain()
    stored = database.read_sync(
        lambda conn: conn.execute(select(traces.c.project_id, traces.c.body).order_by(traces.c.seq)).all()
    )
    for project in ("p0", "p1", "p2"):
        leaves = [leaf_hash(bytes(r.body)) for r in stored if r.project_id == project]
        state = database.read_sync(lambda conn, p=project: repository.tree(conn, p))  # type: ignore[misc]
        assert state.size == len(leaves) and state.root == root(leaves)
    assert database.read_sync(lambda conn: get_cursor(conn, "ledger")) == database.read_sync(
        trace_log.last_seq
    )

    assert await write_checkpoints(database, signer) == 3
    assert await write_checkpoints(database, signer) == 0  # nothing grew
    latest = database.read_sync(lambda conn: repository.latest_checkpoint(conn, "p1"))
    assert latest is not None and latest.size == 17 and latest.origin == "opencts.test/p1"
    key = database.write_sync(lambda conn: signer.key(conn, 0))
    assert verify_note(latest.note, key.vkey).root == latest.root


async def test_checkpoint_covering_signs_only_when_the_latest_does_not_cover(
    database: Database, signer: NoteSigner
) -> None:
    database.write_sync(
        lambda conn: trace_log.append(conn, [trace_row(f"a{i}", project_id="p") for i in range(5)])
    )
    last = database.read_sync(trace_log.last_seq)
    assert repository.checkpoint_covering(database, "p", last, signer=signer) is None  # the ledger is behind
    await ConsumerRunner(database, LedgerConsumer(database)).drain()
    assert repository.checkpoint_covering(database, "p", last) is None  # no signer, no checkpoint yet
    first = repository.checkpoint_covering(database, "p", last, signer=signer)
    assert first is not None and first.size == 5 and first.last_seq == last
    database.write_sync(lambda conn: trace_log.append(conn, [trace_row("b", project_id="p")]))
    await ConsumerRunner(database, LedgerConsumer(database)).drain()
    assert repository.checkpoint_covering(database, "p", last, signer=signer) == first
    newer = repository.checkpoint_covering(database, "p", last + 1, signer=signer)
    assert newer is not None and newer.size == 6


@pytest.mark.postgres
async def test_two_nodes_on_one_postgresql_build_one_tree(postgres_url: str, signer: NoteSigner) -> None:
    first, second = Database(postgres_url), Database(postgres_url)
    migrate.upgrade(first)
    try:
        for start in range(0, 400, 100):
            rows = [trace_row(f"t{i}", project_id=f"p{i % 2}") for i in range(start, start + 100)]
            first.write_sync(lambda conn, r=rows: trace_log.append(conn, r))  # type: ignore[misc]
            await asyncio.gather(
                ConsumerRunner(first, LedgerConsumer(first)).drain(),
                ConsumerRunner(second, LedgerConsumer(second)).drain(),
                write_checkpoints(first, signer),
                write_checkpoints(second, signer),
            )
        bodies = first.read_sync(
            lambda conn: conn.execute(select(traces.c.project_id, traces.c.body).order_by(traces.c.seq)).all()
        )
        for project in ("p0", "p1"):
            leaves = [leaf_hash(bytes(r.body)) for r in bodies if r.project_id == project]
            a = first.read_sync(lambda conn, p=project: repository.tree(conn, p))  # type: ignore[misc]
            b = second.read_sync(lambda conn, p=project: repository.tree(conn, p))  # type: ignore[misc]
            assert a == b and a.size == 200 and a.root == root(leaves)
            stored = first.read_sync(lambda conn, p=project: tiles.leaf_hashes(conn, p, 0, 200))  # type: ignore[misc]
            assert stored == leaves  # no leaf twice, none missing
            state = first.read_sync(lambda conn, p=project: repository.tree(conn, p))  # type: ignore[misc]
            proof = first.read_sync(
                lambda conn, p=project: inclusion_proof(tiles.TileSource(conn, p), 150, 200)  # type: ignore[misc]
            )
            assert verify_inclusion(leaves[150], 150, 200, proof, state.root)
    finally:
        first.close()
        second.close()
