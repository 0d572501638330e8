"""What the ledger APIs answer: checkpoints, a trace's inclusion proof, consistency between two sizes.

The inclusion proof's leaf is recomputed from the trace's body *as stored now*, never read from the tree:
if someone changed the body in the database behind the tree, the answer carries the changed body and a
proof that no longer leads to the signed root, which is exactly what the client must notice.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from opencts.clock import now_ms
from opencts.errors import BadRequest, NotFound
from opencts.ledger import repository, tiles
from opencts.ledger.checkpoint import Checkpoint
from opencts.ledger.hashing import consistency_proof, inclusion_proof, leaf_hash
from opencts.ledger.repository import NoteSigner
from opencts.store import trace_log
from opencts.store.tables import traces


@dataclass(frozen=True)
class TraceProof:
    body: bytes
    leaf_hash: bytes
    leaf_index: int
    checkpoint: Checkpoint
    audit_path: list[bytes]


def current_checkpoint(conn: Connection, project_id: str, signer: NoteSigner) -> Checkpoint:
    """The checkpoint of the tree as it is now, signed now if the tree grew since the last one."""
    checkpoint = repository.make_checkpoint(conn, project_id, signer, now_ms())
    if checkpoint is None:
        raise NotFound(f"project {project_id} has no traces in its ledger yet")
    return checkpoint


def _checkpoint_at(conn: Connection, project_id: str, size: int | None, signer: NoteSigner) -> Checkpoint:
    if size is None:
        return current_checkpoint(conn, project_id, signer)
    checkpoint = repository.checkpoint_of_size(conn, project_id, size)
    if checkpoint is None:
        raise NotFound(f"no checkpoint of project {project_id} has tree size {size}")
    return checkpoint


def trace_proof(
    conn: Connection, project_id: str, trace_id: str, signer: NoteSigner, *, tree_size: int | None = None
) -> TraceProof:
    """The trace's stored body with its inclusion proof against a signed checkpoint (see the module doc)."""
    position = trace_log.position_of(conn, project_id, trace_id)
    if position is None:
        raise NotFound(f"trace {trace_id} does not exist in project {project_id}")
    index = tiles.leaf_index(conn, project_id, position.seq)
    if index is None:
        raise NotFound(f"trace {trace_id} is not in the ledger yet; ask again in a moment")
    checkpoint = _checkpoint_at(conn, project_id, tree_size, signer)
    if index >= checkpoint.size:
        raise BadRequest(f"trace {trace_id} is leaf {index}, beyond the tree size {checkpoint.size}")
    body = bytes(conn.execute(select(traces.c.body).where(traces.c.seq == position.seq)).scalar_one())
    path = inclusion_proof(tiles.TileSource(conn, project_id), index, checkpoint.size)
    return TraceProof(body, leaf_hash(body), index, checkpoint, path)


def consistency(
    conn: Connection, project_id: str, first: int, second: int | None, signer: NoteSigner
) -> tuple[list[bytes], Checkpoint]:
    """The consistency proof from tree size ``first`` to the checkpoint of size ``second`` (default now)."""
    checkpoint = _checkpoint_at(conn, project_id, second, signer)
    if not 0 <= first <= checkpoint.size:
        raise BadRequest(f"first must be between 0 and the tree size {checkpoint.size}, not {first}")
    return consistency_proof(tiles.TileSource(conn, project_id), first, checkpoint.size), checkpoint
