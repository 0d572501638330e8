"""The term index's file: what :meth:`~opencts.store.term_index.TermIndex.save` writes and ``load`` reads.

Reading a snapshot takes a second where reading ten million rows from the log takes minutes, so each
process keeps one beside its data (``DATA_DIR/opencts.db.terms``, ``DATA_DIR/postgresql.terms``). The
file is derived data: a missing, torn or foreign one is simply not used.

Layout: a sequence of chunks, each an 8-byte little-endian length and that many bytes. First a JSON
header (version, the last seq covered and that row's trace id as the anchor, counts), then the time
array, one hash array per hashed column, and a (JSON key, serialised bitmap) pair per term and per time
bucket. A file is trusted only while the database still holds its anchor row: another database, or one
restored from an older copy, does not have it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson
from pyroaring import BitMap64
from sqlalchemy import Connection, text

from opencts.store.files import open_private

#: bumped whenever the layout changes; a file of another version is not read
VERSION = 4

Term = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a snapshot file holds, as the index keeps it in memory."""

    upto: int
    hash_base: int
    times: np.ndarray[Any, Any]
    hashes: list[np.ndarray[Any, Any]]
    terms: dict[Term, BitMap64]
    buckets: dict[int, BitMap64]


def anchor(conn: Connection, seq: int) -> str | None:
    """The trace id of the row ``seq``, if the database holds it."""
    found = conn.execute(text("SELECT trace_id FROM traces WHERE seq = :s"), {"s": seq}).scalar()
    return None if found is None else str(found)


def write(
    path: Path,
    *,
    upto: int,
    anchor_id: str,
    hash_base: int,
    times: bytes,
    hashes: Sequence[bytes],
    terms: Sequence[tuple[Term, BitMap64]],
    buckets: Sequence[tuple[int, BitMap64]],
    serialise: Callable[[BitMap64], bytes],
) -> None:
    """Write a snapshot next to ``path`` and move it into place, so a crash never leaves half a file.

    ``serialise`` copies one bitmap (the index takes its lock for it), so feeding never waits for the
    whole file.
    """
    partial = path.with_name(path.name + ".partial")
    with open_private(partial) as out:  # the index holds user names and resource ids
        header = {
            "version": VERSION,
            "upto": upto,
            "anchor": anchor_id,
            "terms": len(terms),
            "buckets": len(buckets),
            "hash_base": hash_base,
        }
        _write_chunk(out, orjson.dumps(header))
        _write_chunk(out, times)
        for data in hashes:
            _write_chunk(out, data)
        for key, bitmap in [*terms, *buckets]:
            data = serialise(bitmap)
            _write_chunk(out, orjson.dumps(key))
            _write_chunk(out, data)
    partial.replace(path)


def read(path: Path, conn: Connection, *, hashed_columns: int) -> Snapshot | None:
    """The snapshot at ``path`` if it still describes this database; None otherwise."""
    try:
        with path.open("rb") as source:
            header = orjson.loads(_read_chunk(source))
            if header.get("version") != VERSION:
                return None
            found = anchor(conn, header["upto"])
            if found is None or found != header["anchor"]:
                return None  # another database, or one restored from an older copy
            times = np.frombuffer(_read_chunk(source), dtype=np.int64).copy()
            hashes = [
                np.frombuffer(_read_chunk(source), dtype=np.uint32).copy() for _ in range(hashed_columns)
            ]
            terms: dict[Term, BitMap64] = {}
            for _ in range(int(header["terms"])):
                key = orjson.loads(_read_chunk(source))
                terms[(key[0], key[1], key[2], key[3])] = BitMap64.deserialize(_read_chunk(source))
            buckets: dict[int, BitMap64] = {}
            for _ in range(int(header["buckets"])):
                bucket = int(orjson.loads(_read_chunk(source)))
                buckets[bucket] = BitMap64.deserialize(_read_chunk(source))
            return Snapshot(int(header["upto"]), int(header["hash_base"]), times, hashes, terms, buckets)
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None  # missing, partial or foreign: read the log instead


def _write_chunk(out: BinaryIO, data: bytes) -> None:
    out.write(len(data).to_bytes(8, "little"))
    out.write(data)


def _read_chunk(source: BinaryIO) -> bytes:
    size = int.from_bytes(source.read(8), "little")
    data = source.read(size)
    if len(data) != size:
        raise ValueError("snapshot ends early")
    return data
