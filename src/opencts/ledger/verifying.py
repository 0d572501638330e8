"""Checking the ledger APIs' answers on the client side, with nothing but the published keys: pure.

A client must not trust the server's arithmetic, so each check is done here from the raw answer:

1. the checkpoint note verifies under one of the published note verifier keys;
2. (inclusion) the leaf hash is recomputed from ``trace_body``, the exact stored bytes, and the audit
   path leads from it to the signed root at ``leaf_index`` (RFC 9162 §2.1.3.2);
3. (consistency) the proof leads from the old note's root to the new note's root (RFC 9162 §2.1.4.2),
   so the new tree extends the old one: the log has only grown.

Each check raises :class:`LedgerVerificationError` saying what failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opencts.ledger.checkpoint import Checkpoint, CheckpointError, parse_note, verify_note
from opencts.ledger.hashing import leaf_hash, verify_consistency, verify_inclusion


class LedgerVerificationError(Exception):
    """An answer of the ledger APIs that does not verify."""


def verified_checkpoint(note: str, vkeys: Iterable[str]) -> Checkpoint:
    """The checkpoint of ``note`` if it is signed by one of ``vkeys``."""
    failures = []
    for vkey in vkeys:
        try:
            return verify_note(note, vkey)
        except CheckpointError as exc:
            failures.append(str(exc))
    raise LedgerVerificationError(
        "the checkpoint is not signed by a published key" + (f" ({failures[-1]})" if failures else "")
    )


def _hashes(values: Any) -> list[bytes]:
    try:
        return [bytes.fromhex(v) for v in values]
    except (TypeError, ValueError):
        raise LedgerVerificationError("the proof is not a list of hex hashes") from None


def check_inclusion(answer: Mapping[str, Any], vkeys: Iterable[str]) -> Checkpoint:
    """Steps 1-2 over a ``GET .../traces/{id}/proof`` answer; the verified checkpoint."""
    checkpoint = verified_checkpoint(str(answer["checkpoint"]), vkeys)
    leaf = leaf_hash(str(answer["trace_body"]).encode())
    index, size = int(answer["leaf_index"]), int(answer["tree_size"])
    if size != checkpoint.size:
        raise LedgerVerificationError(
            f"the proof is for tree size {size}, the checkpoint has {checkpoint.size}"
        )
    if not verify_inclusion(leaf, index, size, _hashes(answer["audit_path"]), checkpoint.root):
        raise LedgerVerificationError(
            f"the trace as stored is not leaf {index} of the signed tree of size {size}: it was changed"
            " after it was logged, or the proof is wrong"
        )
    return checkpoint


def check_consistency(old_note: str, answer: Mapping[str, Any], vkeys: Iterable[str]) -> Checkpoint:
    """Step 3 over a ``GET .../ledger/consistency`` answer for the old note; the new checkpoint."""
    keys = list(vkeys)
    old = verified_checkpoint(old_note, keys)
    new = verified_checkpoint(str(answer["checkpoint"]), keys)
    if old.origin != new.origin:
        raise LedgerVerificationError(f"the checkpoints are of different logs: {old.origin} and {new.origin}")
    if int(answer["first"]) != old.size or int(answer["second"]) != new.size:
        raise LedgerVerificationError("the consistency proof is not between these two checkpoints")
    if not verify_consistency(old.size, new.size, old.root, new.root, _hashes(answer["proof"])):
        raise LedgerVerificationError(
            f"the tree of size {new.size} is not an extension of the old checkpoint of size {old.size}:"
            " the log was rewritten"
        )
    return new


def old_size(note: str) -> int:
    """The tree size an old note states (to ask for a proof from it), signature unchecked."""
    try:
        return parse_note(note).size
    except CheckpointError as exc:
        raise LedgerVerificationError(f"not a checkpoint: {exc}") from None
