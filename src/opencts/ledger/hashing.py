"""RFC 9162 Merkle tree hashing, proofs and their verification: pure functions, no database.

The verifier (``opencts verify``) and any third party use this module alone, so it follows the RFC
to the letter (RFC 9162 §2.1, the same tree as RFC 6962):

- leaf hash ``SHA-256(0x00 || leaf)``, node hash ``SHA-256(0x01 || left || right)``, empty tree
  ``SHA-256("")``;
- a tree of ``n > 1`` leaves splits at ``k``, the largest power of two smaller than ``n``;
- inclusion proofs are PATH(m, D[n]) (§2.1.3.1), verified by §2.1.3.2's algorithm;
- consistency proofs are PROOF(m, D[n]) (§2.1.4.1), verified by §2.1.4.2's algorithm.

Proofs are built over a :class:`NodeSource`, which answers the hash of a *perfect* subtree (``2**level``
leaves starting at ``index * 2**level``). Every node a proof needs is either such a subtree or the right
edge of one, whose hash is folded from its perfect pieces; so a tiled store (``ledger.tiles``) proves
without loading the leaves, and :class:`MemoryTree` proves over a list. Roots, leaves and proof entries
are 32-byte hashes; leaves passed to these functions are leaf *hashes* (apply :func:`leaf_hash` first).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"  # RFC 9162 §2.1.1
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n > 1``): where RFC 9162 splits a tree of ``n``."""
    return 1 << ((n - 1).bit_length() - 1)


class NodeSource(Protocol):
    def perfect(self, level: int, index: int) -> bytes:
        """The hash of the perfect subtree of ``2**level`` leaves starting at leaf ``index * 2**level``."""
        ...


class MemoryTree:
    """A :class:`NodeSource` over leaf hashes in memory: every level kept (2n hashes)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.levels: list[list[bytes]] = [list(leaves)]
        while len(self.levels[-1]) > 1:
            below = self.levels[-1]
            self.levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def perfect(self, level: int, index: int) -> bytes:
        return self.levels[level][index]


def decompose(start: int, end: int) -> list[tuple[int, int]]:
    """The maximal perfect subtrees ``(level, index)`` covering leaves ``[start, end)``, left to right.

    For a range that is a (possibly incomplete) subtree of the RFC tree, folding their hashes from the
    right gives its hash.
    """
    out = []
    while start < end:
        # the largest aligned block at ``start`` that fits
        level = (start & -start).bit_length() - 1 if start else (end - start).bit_length() - 1
        while start + (1 << level) > end:
            level -= 1
        out.append((level, start >> level))
        start += 1 << level
    return out


def fold(hashes: Sequence[bytes]) -> bytes:
    """The root over a compact range's hashes (left to right): folded from the right."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def range_hash(source: NodeSource, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a range that is a subtree of the tree (as every node a proof names is)."""
    return fold([source.perfect(level, index) for level, index in decompose(start, end)])


def _as_source(leaves_or_source: Sequence[bytes] | NodeSource) -> NodeSource:
    if isinstance(leaves_or_source, Sequence):
        return MemoryTree(leaves_or_source)
    return leaves_or_source


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH of the leaf hashes (RFC 9162 §2.1.1)."""
    return range_hash(MemoryTree(leaves), 0, len(leaves)) if leaves else EMPTY_ROOT


def compact_range(leaves_or_source: Sequence[bytes] | NodeSource, size: int) -> list[bytes]:
    """The hashes of the maximal perfect subtrees of the first ``size`` leaves, left to right."""
    source = _as_source(leaves_or_source)
    return [source.perfect(level, index) for level, index in decompose(0, size)]


def extend_range(range_hashes: Sequence[bytes], start_size: int, new_leaves: Sequence[bytes]) -> bytes:
    """The root of the tree of ``start_size + len(new_leaves)`` leaves, from the compact range at
    ``start_size`` and the leaf hashes appended: what a verifier holding one digest's range checks the next
    digest's checkpoint with."""
    levels = [level for level, _ in decompose(0, start_size)]
    if len(levels) != len(range_hashes):
        raise ValueError(
            f"a compact range of size {start_size} has {len(levels)} hashes, not {len(range_hashes)}"
        )
    stack = list(zip(levels, range_hashes, strict=True))
    for leaf in new_leaves:
        stack.append((0, leaf))
        while len(stack) > 1 and stack[-1][0] == stack[-2][0]:
            (level, right), (_, left) = stack.pop(), stack.pop()
            stack.append((level + 1, node_hash(left, right)))
    return fold([h for _, h in stack])


def inclusion_proof(leaves_or_source: Sequence[bytes] | NodeSource, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) (RFC 9162 §2.1.3.1), leaf side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    source = _as_source(leaves_or_source)
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index - start < k:
            path.append(range_hash(source, start + k, end))
            end = start + k
        else:
            path.append(range_hash(source, start, start + k))
            start += k
    path.reverse()
    return path


def consistency_proof(leaves_or_source: Sequence[bytes] | NodeSource, first: int, second: int) -> list[bytes]:
    """PROOF(first, D[second]) (RFC 9162 §2.1.4.1); empty when ``first`` is 0 or equals ``second``."""
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from {first} to {second}")
    if first in (0, second):
        return []
    source = _as_source(leaves_or_source)
    path: list[bytes] = []
    start, end, m, complete = 0, second, first, True
    while m != end - start:
        k = split_point(end - start)
        if m <= k:
            path.append(range_hash(source, start + k, end))
            end = start + k
        else:
            path.append(range_hash(source, start, start + k))
            start, m, complete = start + k, m - k, False
    if not complete:
        path.append(range_hash(source, start, end))
    path.reverse()
    return path


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root_hash: bytes) -> bool:
    """RFC 9162 §2.1.3.2: whether ``proof`` shows leaf hash ``leaf`` at ``index`` in tree ``root_hash``."""
    if index >= size or index < 0:  # step 1
        return False
    fn, sn, r = index, size - 1, leaf  # steps 2-3
    for p in proof:  # step 4
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root_hash  # step 5


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: whether the tree ``second_root`` of ``second`` leaves extends ``first_root``."""
    if not 0 <= first <= second:
        return False
    if first == second or first == 0:  # the same tree; or every tree extends the empty one
        return not proof and first_root == (second_root if first else EMPTY_ROOT)
    if not proof:  # step 1
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # step 2: ``first`` is a power of two
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1  # step 3
    while fn & 1:  # step 4
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0  # step 7
