"""The verifier's side of the Merkle tree: a compact range grown leaf by leaf, and a checkpoint note checked
against every published note key.

The hashing and the note format are the ledger's (``opencts.ledger.hashing``, ``opencts.ledger.checkpoint``,
both pure); this module only adds what a reader walking the digests needs: the range after each leaves
object, so each digest's checkpoint root can be compared, and "signed by any of these keys".
"""

from __future__ import annotations

from opencts.ledger.checkpoint import Checkpoint, CheckpointError, verify_note
from opencts.ledger.hashing import fold, leaf_hash, node_hash

__all__ = ["Checkpoint", "CheckpointError", "append_leaf", "leaf_hash", "range_root", "verify_checkpoint"]


def append_leaf(compact: list[bytes], size: int, leaf: bytes) -> None:
    """Add ``leaf`` to the compact range of a tree of ``size`` leaves (the roots of its perfect subtrees,
    largest first), in place: equal-sized neighbours merge as in a binary counter."""
    merged = leaf
    while size & 1:
        merged = node_hash(compact.pop(), merged)
        size >>= 1
    compact.append(merged)


def range_root(compact: list[bytes]) -> bytes:
    """The tree's root (RFC 9162 MTH) from its compact range."""
    return fold(compact)


def verify_checkpoint(note: str, vkeys: list[str]) -> Checkpoint:
    """The checkpoint of ``note`` when one of the published note keys signed it; CheckpointError otherwise."""
    for vkey in vkeys:
        try:
            return verify_note(note, vkey)
        except CheckpointError:
            continue
    raise CheckpointError("no published note key signed the checkpoint")
