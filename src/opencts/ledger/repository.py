"""The ledger's rows: each project's tree (size, root, last seq), its appends, and its signed checkpoints.

Appending takes the project's ``ledger_trees`` row with ``FOR UPDATE`` (on SQLite the single writer
serialises instead) and skips every trace whose seq is not above the row's ``last_seq``. Two nodes that
read the same batch of the log therefore append it once: the second waits for the first's commit, then
finds nothing new. A leaf's bytes are the stored ``traces.body``, exactly the bytes in the archived file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select, update

from opencts.archive.signing_keys import SigningKey, current_key, key_name_for
from opencts.clock import now_ms
from opencts.config import Settings
from opencts.iam.secrets import SecretBox
from opencts.ledger import tiles
from opencts.ledger.checkpoint import Checkpoint, origin_for, parse_note, sign_note
from opencts.ledger.hashing import EMPTY_ROOT, leaf_hash
from opencts.store import Database
from opencts.store.tables import ledger_checkpoints, ledger_trees
from opencts.store.upsert import insert_ignore


@dataclass(frozen=True)
class Tree:
    project_id: str
    size: int
    root: bytes
    last_seq: int


@dataclass(frozen=True)
class NoteSigner:
    """What signing a checkpoint needs: the master key's box and the archive settings."""

    box: SecretBox
    key_name: str
    key_days: int

    @classmethod
    def from_settings(cls, settings: Settings, box: SecretBox) -> NoteSigner:
        return cls(box, key_name_for(settings.ledger_origin, settings.region), settings.signing_key_days)

    def key(self, conn: Connection, now_ms: int) -> SigningKey:
        return current_key(conn, self.box, now_ms, self.key_days, name=self.key_name)

    def origin(self, project_id: str) -> str:
        return origin_for(self.key_name, project_id)


def tree(conn: Connection, project_id: str, *, lock: bool = False) -> Tree:
    """The project's tree (empty if it has none yet); with ``lock``, its row is created and locked."""
    if lock:
        insert_ignore(
            conn,
            ledger_trees,
            {"project_id": project_id, "size": 0, "root": EMPTY_ROOT, "last_seq": 0, "updated_at": 0},
            key=["project_id"],
        )
    stmt = select(ledger_trees).where(ledger_trees.c.project_id == project_id)
    row = conn.execute(stmt.with_for_update() if lock else stmt).first()
    if row is None:
        return Tree(project_id, 0, EMPTY_ROOT, 0)
    return Tree(project_id, int(row.size), bytes(row.root), int(row.last_seq))


def append_traces(conn: Connection, project_id: str, rows: Sequence[tuple[int, bytes]], at_ms: int) -> int:
    """Append ``(seq, body)`` rows of one project in seq order, skipping those already leaves; how many."""
    current = tree(conn, project_id, lock=True)
    new = [(seq, body) for seq, body in rows if seq > current.last_seq]
    if not new:
        return 0
    source = tiles.TileSource(conn, project_id)
    size = tiles.append(source, current.size, [leaf_hash(body) for _, body in new], [seq for seq, _ in new])
    conn.execute(
        update(ledger_trees)
        .where(ledger_trees.c.project_id == project_id)
        .values(size=size, root=source.root(size), last_seq=new[-1][0], updated_at=at_ms)
    )
    return len(new)


def append_log_rows(conn: Connection, rows: Iterable[Any], at_ms: int) -> int:
    """Append consumer rows (``seq``, ``project_id``, ``body``) of any projects, per project in seq order."""
    by_project: dict[str, list[tuple[int, bytes]]] = {}
    for row in rows:
        by_project.setdefault(row.project_id, []).append((int(row.seq), bytes(row.body)))
    # projects in a fixed order, so two nodes lock tree rows in the same order and never deadlock
    return sum(append_traces(conn, p, by_project[p], at_ms) for p in sorted(by_project))


def _checkpoint(row: Any) -> Checkpoint:
    parsed = parse_note(row.note)
    return Checkpoint(
        origin=parsed.origin,
        size=int(row.size),
        root=bytes(row.root),
        note=row.note,
        time_ms=int(row.time_ms),
        last_seq=int(row.last_seq),
    )


def latest_checkpoint(conn: Connection, project_id: str) -> Checkpoint | None:
    row = conn.execute(
        select(ledger_checkpoints)
        .where(ledger_checkpoints.c.project_id == project_id)
        .order_by(ledger_checkpoints.c.size.desc())
        .limit(1)
    ).first()
    return _checkpoint(row) if row is not None else None


def checkpoint_of_size(conn: Connection, project_id: str, size: int) -> Checkpoint | None:
    row = conn.execute(
        select(ledger_checkpoints).where(
            ledger_checkpoints.c.project_id == project_id, ledger_checkpoints.c.size == size
        )
    ).first()
    return _checkpoint(row) if row is not None else None


def make_checkpoint(conn: Connection, project_id: str, signer: NoteSigner, at_ms: int) -> Checkpoint | None:
    """A signed checkpoint of the tree as it is now (the stored one if its size was signed already)."""
    current = tree(conn, project_id)
    if current.size == 0:
        return None
    existing = checkpoint_of_size(conn, project_id, current.size)
    if existing is not None:
        return existing
    note = sign_note(signer.origin(project_id), current.size, current.root, signer.key(conn, at_ms))
    values = {
        "project_id": project_id,
        "size": current.size,
        "root": current.root,
        "last_seq": current.last_seq,
        "time_ms": at_ms,
        "note": note,
    }
    insert_ignore(conn, ledger_checkpoints, values, key=["project_id", "size"])  # another node may sign too
    return checkpoint_of_size(conn, project_id, current.size)


def grown_projects(conn: Connection) -> list[str]:
    """Projects whose tree is larger than their latest checkpoint."""
    signed = (
        select(func.max(ledger_checkpoints.c.size))
        .where(ledger_checkpoints.c.project_id == ledger_trees.c.project_id)
        .scalar_subquery()
    )
    stmt = select(ledger_trees.c.project_id).where(ledger_trees.c.size > func.coalesce(signed, 0))
    return [row.project_id for row in conn.execute(stmt.order_by(ledger_trees.c.project_id))]


def checkpoint_grown(conn: Connection, signer: NoteSigner, at_ms: int) -> int:
    """Sign a checkpoint for every project whose tree grew since its last one; how many were signed."""
    return sum(make_checkpoint(conn, p, signer, at_ms) is not None for p in grown_projects(conn))


def checkpoint_covering(
    db_or_conn: Database | Connection, project_id: str, seq: int, *, signer: NoteSigner | None = None
) -> Checkpoint | None:
    """A checkpoint whose tree holds the project's trace ``seq`` (and every earlier one).

    The latest checkpoint if it covers ``seq``; otherwise, with ``signer``, a new one of the tree as it
    is now. None when the tree does not reach ``seq`` yet (the ledger consumer is behind: wait), or when
    only a new checkpoint would do and no ``signer`` was given.
    """
    if isinstance(db_or_conn, Database):
        return db_or_conn.write_sync(lambda conn: checkpoint_covering(conn, project_id, seq, signer=signer))
    conn = db_or_conn
    latest = latest_checkpoint(conn, project_id)
    if latest is not None and latest.last_seq is not None and latest.last_seq >= seq:
        return latest
    if signer is None or tree(conn, project_id).last_seq < seq:
        return None
    return make_checkpoint(conn, project_id, signer, now_ms())
