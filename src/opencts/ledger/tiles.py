"""A project's tree stored in tiles of 256 hashes, in the spirit of C2SP ``tlog-tiles``.

Tile (level ``L``, index ``N``) holds the hashes of the nodes ``N*256 .. N*256+255`` at tree height
``8*L``: level 0 holds leaf hashes, level 1 the roots of full level-0 tiles, and so on. Only the right
edge is ever partial, and a partial tile is rewritten as it fills; a full tile never changes. So the
ledger costs about one row per 256 traces (plus 1/256 of that per level above), not one per trace, and
any node of the tree is at most 255 hash operations away from a stored hash.

Level-0 tiles also keep the seqs of their leaves, so the leaf index of a trace is one indexed lookup
(the tile whose ``first_seq`` is the greatest not above the trace's seq) and a bisection.

Only :mod:`opencts.ledger` writes these rows, under the lock of the project's tree row.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Sequence

from sqlalchemy import Connection, and_, insert, select, update

from opencts.ledger.hashing import HASH_SIZE, MemoryTree, decompose, fold
from opencts.store.tables import ledger_tiles

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT


def _pack_seqs(seqs: Sequence[int]) -> bytes:
    return struct.pack(f">{len(seqs)}Q", *seqs)


def _unpack_seqs(raw: bytes) -> list[int]:
    return list(struct.unpack(f">{len(raw) // 8}Q", raw))


def _split_hashes(raw: bytes) -> list[bytes]:
    return [raw[i : i + HASH_SIZE] for i in range(0, len(raw), HASH_SIZE)]


class TileSource:
    """A :class:`~opencts.ledger.hashing.NodeSource` over one project's stored tiles, read through a cache."""

    def __init__(self, conn: Connection, project_id: str) -> None:
        self.conn = conn
        self.project_id = project_id
        self._tiles: dict[tuple[int, int], MemoryTree] = {}

    def tile(self, level: int, index: int) -> list[bytes]:
        return self._tree(level, index).levels[0]

    def _tree(self, level: int, index: int) -> MemoryTree:
        tree = self._tiles.get((level, index))
        if tree is None:
            raw = self.conn.execute(
                select(ledger_tiles.c.hashes).where(
                    ledger_tiles.c.project_id == self.project_id,
                    ledger_tiles.c.level == level,
                    ledger_tiles.c.tile_index == index,
                )
            ).scalar()
            tree = MemoryTree(_split_hashes(bytes(raw)) if raw is not None else [])
            self._tiles[(level, index)] = tree
        return tree

    def tile_root(self, level: int, index: int) -> bytes:
        """The root of a full tile: a node at height ``8 * (level + 1)``."""
        return self._tree(level, index).perfect(TILE_HEIGHT, 0)

    def put(self, level: int, index: int, hashes: list[bytes]) -> None:
        self._tiles[(level, index)] = MemoryTree(hashes)

    def perfect(self, level: int, index: int) -> bytes:
        tile_level, height = divmod(level, TILE_HEIGHT)
        first = index << height  # the first node at height 8*tile_level under this subtree
        tree = self._tree(tile_level, first >> TILE_HEIGHT)
        offset = first & (TILE_WIDTH - 1)
        if offset + (1 << height) > tree.size:
            raise LookupError(f"node ({level}, {index}) of project {self.project_id} is not stored")
        return tree.perfect(height, offset >> height)

    def root(self, size: int) -> bytes:
        return fold(self.compact_range(size))

    def compact_range(self, size: int) -> list[bytes]:
        return [self.perfect(level, index) for level, index in decompose(0, size)]


def append(source: TileSource, size: int, leaves: Sequence[bytes], seqs: Sequence[int]) -> int:
    """Store ``leaves`` (leaf hashes, with their traces' seqs) after the first ``size``; the new size."""
    _append_level(source, 0, size, list(leaves), list(seqs))
    return size + len(leaves)


def _append_level(
    source: TileSource, level: int, count: int, hashes: list[bytes], seqs: list[int] | None
) -> None:
    """Append node hashes at tile level ``level`` (``count`` nodes there already); carry full tiles up."""
    first_tile, offset = divmod(count, TILE_WIDTH)
    nodes = (source.tile(level, first_tile)[:offset] if offset else []) + hashes
    old_seqs: list[int] = []
    if seqs is not None and offset:
        old_seqs = _tile_seqs(source.conn, source.project_id, first_tile)[:offset]
    all_seqs = old_seqs + seqs if seqs is not None else None
    carried: list[bytes] = []
    for start in range(0, len(nodes), TILE_WIDTH):
        index = first_tile + start // TILE_WIDTH
        chunk = nodes[start : start + TILE_WIDTH]
        values: dict[str, object] = {"hashes": b"".join(chunk)}
        if all_seqs is not None:
            chunk_seqs = all_seqs[start : start + TILE_WIDTH]
            values.update(first_seq=chunk_seqs[0], seqs=_pack_seqs(chunk_seqs))
        _write_tile(source, level, index, values, exists=start == 0 and offset > 0)
        source.put(level, index, chunk)
        if len(chunk) == TILE_WIDTH:
            carried.append(source.tile_root(level, index))
    if carried:
        _append_level(source, level + 1, count // TILE_WIDTH, carried, None)


def _write_tile(
    source: TileSource, level: int, index: int, values: dict[str, object], *, exists: bool
) -> None:
    key = {"project_id": source.project_id, "level": level, "tile_index": index}
    if exists:
        source.conn.execute(
            update(ledger_tiles)
            .where(*(ledger_tiles.c[name] == value for name, value in key.items()))
            .values(**values)
        )
    else:
        source.conn.execute(insert(ledger_tiles).values(**key, **values))


def _tile_seqs(conn: Connection, project_id: str, index: int) -> list[int]:
    raw = conn.execute(
        select(ledger_tiles.c.seqs).where(
            ledger_tiles.c.project_id == project_id,
            ledger_tiles.c.level == 0,
            ledger_tiles.c.tile_index == index,
        )
    ).scalar()
    return _unpack_seqs(bytes(raw)) if raw is not None else []


def leaf_hashes(conn: Connection, project_id: str, start: int, end: int) -> list[bytes]:
    """The leaf hashes ``[start, end)`` (the digest writer's leaves object)."""
    if end <= start:
        return []
    first, last = start // TILE_WIDTH, (end - 1) // TILE_WIDTH
    rows = conn.execute(
        select(ledger_tiles.c.tile_index, ledger_tiles.c.hashes)
        .where(
            ledger_tiles.c.project_id == project_id,
            ledger_tiles.c.level == 0,
            ledger_tiles.c.tile_index.between(first, last),
        )
        .order_by(ledger_tiles.c.tile_index)
    ).all()
    hashes = [h for row in rows for h in _split_hashes(bytes(row.hashes))]
    out = hashes[start - first * TILE_WIDTH : end - first * TILE_WIDTH]
    if len(out) != end - start:
        raise LookupError(f"project {project_id} has no leaves {start}..{end - 1} stored")
    return out


def stored_compact_range(conn: Connection, project_id: str, size: int) -> list[bytes]:
    """The compact range of the first ``size`` leaves (the starting digest's ``tree_compact_range``)."""
    return TileSource(conn, project_id).compact_range(size)


def leaf_index(conn: Connection, project_id: str, seq: int) -> int | None:
    """The leaf index of the project's trace ``seq``; None if it is not a leaf (yet)."""
    row = conn.execute(
        select(ledger_tiles.c.tile_index, ledger_tiles.c.seqs)
        .where(and_(ledger_tiles.c.project_id == project_id, ledger_tiles.c.level == 0))
        .where(ledger_tiles.c.first_seq <= seq)
        .order_by(ledger_tiles.c.first_seq.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    seqs = _unpack_seqs(bytes(row.seqs))
    at = bisect.bisect_left(seqs, seq)
    if at == len(seqs) or seqs[at] != seq:
        return None
    return int(row.tile_index) * TILE_WIDTH + at
