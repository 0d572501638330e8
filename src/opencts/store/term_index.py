"""The term index: how SQLite answers ListTraces filters without a B-tree per filter column.

A B-tree per filter made every append touch a dozen indexes, and SQLite still used only one of them for a
query that combined filters: a rare or empty combination (a user who never touched RDS) walked every
row of the chosen index. Here each *term* (project, kind, column, value) owns a compressed bitmap of the
sequence numbers that carry it (pyroaring's 64-bit bitmaps: seq counts every trace ever appended, and
32 bits would run out after a few months of heavy traffic). A query ANDs the bitmaps of its filters, so
a combination costs what its answer costs, and an append adds a few bits instead of ten B-tree entries.

Bitmaps are ordered by ``seq`` (arrival), but ListTraces is ordered by ``time``. The two are close, not
equal: producers send late. For every block of :data:`BLOCK` sequence numbers the index keeps the
smallest and largest ``time`` seen, which bounds the time of everything not yet read. Candidates are read
newest ``seq`` first and the walk stops as soon as nothing left can beat the page already found.

The index is derived data and lives in the memory of each process that reads the database. It catches up
from the log itself (``refresh``), and the writer feeds it what it has just committed (``feed``), so a
trace is findable as soon as its ingest call answers. A bitmap may hold a sequence number whose row is
gone (retention) or was rolled back: candidate rows are always re-checked against every filter in SQL, so
the bitmaps only have to avoid false negatives, never false positives.
"""

from __future__ import annotations

import threading
import zlib
from array import array
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson
from pyroaring import BitMap64
from sqlalchemy import Connection, text

from opencts.store.files import open_private

#: Filter columns answered by bitmaps on SQLite. Their values repeat (users, services, operations), so a
#: bitmap per value stays small and a batch of appends updates a few dozen of them.
TERM_COLUMNS: tuple[str, ...] = (
    "tracker_name",
    "service_type",
    "user_name",
    "resource_type",
    "trace_name",
    "trace_rating",
    "access_key_id",
    "enterprise_project_id",
)
#: Filter columns whose values are nearly unique (resources). A bitmap per value would cost a Python call
#: per row, and a B-tree on a random key dirtied a page per row and halved the append rate. Instead the
#: index keeps a 32-bit hash of the value per seq, in one array; a query compares the whole array at
#: once (numpy, ~1 ms per million rows) and re-checks the few rows that hash alike in SQL.
HASHED_COLUMNS: tuple[str, ...] = ("resource_id", "resource_name")
#: what :meth:`TermIndex.feed` takes after (seq, project_id, kind, time), in this order
INDEXED_COLUMNS = TERM_COLUMNS + HASHED_COLUMNS
#: sequence numbers per block of the time envelope
BLOCK = 256
#: rows read per catch-up statement, so a long catch-up never holds the lock for long
CATCH_UP_BATCH = 50_000
#: a query that finds the index further behind than this reads through SQL instead of waiting
MAX_QUERY_LAG = 200_000

Term = tuple[str, str, str, str]
_SELECT_AFTER = text(
    "SELECT seq, project_id, kind, time, "
    + ", ".join(INDEXED_COLUMNS)
    + " FROM traces WHERE seq > :after AND seq <= :through ORDER BY seq"
)


class TermIndex:
    """Bitmaps of sequence numbers per term, plus the time envelope of each block of the log."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._catch_up = threading.Lock()  # one catch-up at a time; queries never queue behind it
        self._terms: dict[Term, BitMap64] = {}
        #: the time envelope of blocks ``_block_base`` on (seq // BLOCK), so memory follows the live log
        self._block_min = array("q")
        self._block_max = array("q")
        self._block_base = 0
        #: per hashed column, the value hash of each seq from ``_hash_base`` on (0: no value)
        self._hashes = [np.zeros(0, dtype=np.uint32) for _ in HASHED_COLUMNS]
        self._hash_base = 0
        #: every seq <= upto has been indexed
        self.upto = 0
        self._pruned_below = 0
        self._fed_since_prune = 0

    # -- keeping up with the log ----------------------------------------------------------------------

    def feed(self, rows: Iterable[tuple[int, str, str, int, Sequence[str | None]]]) -> None:
        """Index rows just committed: ``(seq, project_id, kind, time, values in INDEXED_COLUMNS order)``.

        Rows must come in ``seq`` order. A row beyond a gap is not indexed (and neither is anything after
        it); the next :meth:`refresh` reads the gap from the log, so nothing is ever skipped.
        """
        with self._lock:
            self._add(rows, contiguous=True)

    def refresh(self, conn: Connection, *, max_lag: int | None = None, max_rows: int | None = None) -> bool:
        """Catch up with the log as ``conn`` sees it; True once nothing committed is missing.

        With ``max_lag`` the call refuses (rather than blocks) when the index is further behind than that,
        or another thread is already catching up, so a query can read through SQL meanwhile. With
        ``max_rows`` it stops after about that many rows, so a long catch-up can end its read transaction
        now and then (an open reader keeps SQLite from checkpointing the WAL).
        """
        last = int(conn.execute(text("SELECT coalesce(max(seq), 0) FROM traces")).scalar_one())
        if last <= self.upto:
            self._maybe_prune(conn)
            return True
        if max_lag is not None and last - self.upto > max_lag:
            return False
        if not self._catch_up.acquire(blocking=max_lag is None):
            return False
        try:
            target = last if max_rows is None else min(last, self.upto + max_rows)
            while self.upto < target:
                through = min(target, self.upto + CATCH_UP_BATCH)
                rows = conn.execute(_SELECT_AFTER, {"after": self.upto, "through": through}).all()
                with self._lock:
                    self._add(((r[0], r[1], r[2], r[3], r[4:]) for r in rows), contiguous=False)
                    self.upto = max(self.upto, through)  # rows deleted in between leave gaps: fine
        finally:
            self._catch_up.release()
        self._maybe_prune(conn)
        return self.upto >= last

    def _add(
        self, rows: Iterable[tuple[int, str, str, int, Sequence[str | None]]], *, contiguous: bool
    ) -> None:
        taken = []
        block_min, block_max = self._block_min, self._block_max
        upto = self.upto
        if not block_max:
            self._block_base = -1  # set by the first row taken
        for row in rows:
            seq, _, _, time, _ = row
            if seq <= upto:
                continue  # already read by a refresh
            if contiguous and seq != upto + 1:
                break  # a gap: refresh will read it, and everything after it, from the log
            upto = seq
            taken.append(row)
            if self._block_base < 0:
                self._block_base = seq // BLOCK
            block = seq // BLOCK - self._block_base
            if block >= len(block_max):
                grow = block + 1 - len(block_max)
                block_min.extend([2**62] * grow)
                block_max.extend([-1] * grow)
            if time < block_min[block]:
                block_min[block] = time
            if time > block_max[block]:
                block_max[block] = time
        if self._block_base < 0:
            self._block_base = 0
        if taken:
            self._index_columns(taken)
            self._index_hashes(taken)
        self._fed_since_prune += upto - self.upto
        self.upto = upto

    def _index_columns(self, rows: list[tuple[int, str, str, int, Sequence[str | None]]]) -> None:
        """Group seqs by term one stream and column at a time: one bitmap call per term, not per row.

        This runs on the writer's thread with the GIL held, so it is kept to a dict append per value.
        """
        streams: defaultdict[tuple[str, str], list[tuple[int, str, str, int, Sequence[str | None]]]]
        streams = defaultdict(list)
        for row in rows:
            streams[(row[1], row[2])].append(row)
        terms = self._terms
        for (project_id, kind), members in streams.items():
            seqs = [row[0] for row in members]
            columns = zip(*(row[4] for row in members), strict=True)
            # the hashed columns come after TERM_COLUMNS: _index_hashes takes those
            for column, values in zip(TERM_COLUMNS, columns, strict=False):
                by_value: defaultdict[str | None, list[int]] = defaultdict(list)
                for seq, value in zip(seqs, values, strict=True):
                    by_value[value].append(seq)
                for value, found in by_value.items():
                    if value is None:
                        continue
                    term = (project_id, kind, column, value)
                    bitmap = terms.get(term)
                    if bitmap is None:
                        terms[term] = BitMap64(found)
                    else:
                        bitmap.update(found)

    def _index_hashes(self, rows: list[tuple[int, str, str, int, Sequence[str | None]]]) -> None:
        count = len(rows)
        seqs = np.fromiter((row[0] for row in rows), dtype=np.int64, count=count)
        if not self._hashes[0].size:
            self._hash_base = int(seqs[0])
        offsets = seqs - self._hash_base
        needed = int(offsets[-1]) + 1
        for i, column in enumerate(self._hashes):
            if column.size < needed:
                grown = np.zeros(max(needed, 2 * column.size, 1 << 16), dtype=np.uint32)
                grown[: column.size] = column
                self._hashes[i] = column = grown
            at = len(TERM_COLUMNS) + i
            column[offsets] = np.fromiter((_hash(row[4][at]) for row in rows), dtype=np.uint32, count=count)

    def _maybe_prune(self, conn: Connection) -> None:
        """Forget sequence numbers retention has deleted, so memory follows the log, not its history."""
        if self._fed_since_prune < 100_000 or not self._catch_up.acquire(blocking=False):
            return
        try:
            self._prune(conn)
        finally:
            self._catch_up.release()

    def _prune(self, conn: Connection) -> None:
        self._fed_since_prune = 0
        first = conn.execute(text("SELECT min(seq) FROM traces")).scalar_one()
        below = int(first) if first is not None else self.upto + 1
        if below <= self._pruned_below:
            return
        with self._lock:
            for term in list(self._terms):
                bitmap = self._terms[term]
                bitmap.remove_range(0, below)
                if not bitmap:
                    del self._terms[term]
            gone = min(below - self._hash_base, self._hashes[0].size)
            if gone > 0:
                self._hashes = [column[gone:].copy() for column in self._hashes]
                self._hash_base += gone
            blocks_gone = min(below // BLOCK - self._block_base, len(self._block_max))
            if blocks_gone > 0:
                self._block_min = self._block_min[blocks_gone:]
                self._block_max = self._block_max[blocks_gone:]
                self._block_base += blocks_gone
            self._pruned_below = below

    # -- surviving a restart ----------------------------------------------------------------------------

    def save(self, path: Path, conn: Connection) -> bool:
        """Write the index to ``path`` so the next start reads it instead of the whole log.

        The file names the last row it covers (seq, trace_id); :meth:`load` trusts it only if the
        database still holds that very row. Each bitmap is copied under the lock on its own, so feeding
        never waits for the whole file; a bitmap may hold a few seqs past the recorded one, which a
        catch-up adds again (adding is idempotent).
        """
        with self._lock:
            upto = self.upto
            terms = list(self._terms.items())
            envelope = (self._block_min.tobytes(), self._block_max.tobytes())
            block_base = self._block_base
            covered = max(0, upto + 1 - self._hash_base)
            hashes = [column[:covered].tobytes() for column in self._hashes]
            hash_base = self._hash_base
        anchor = conn.execute(text("SELECT trace_id FROM traces WHERE seq = :s"), {"s": upto}).scalar()
        if anchor is None:
            return False
        partial = path.with_name(path.name + ".partial")
        with open_private(partial) as out:  # the index holds user names and resource ids
            header = {
                "version": _SNAPSHOT_VERSION,
                "upto": upto,
                "anchor": anchor,
                "terms": len(terms),
                "hash_base": hash_base,
                "block_base": block_base,
            }
            _write_chunk(out, orjson.dumps(header))
            _write_chunk(out, envelope[0])
            _write_chunk(out, envelope[1])
            for data in hashes:
                _write_chunk(out, data)
            for term, bitmap in terms:
                with self._lock:
                    data = bitmap.serialize()
                _write_chunk(out, orjson.dumps(term))
                _write_chunk(out, data)
        partial.replace(path)
        return True

    def load(self, path: Path, conn: Connection) -> bool:
        """Read a file :meth:`save` wrote, if it still describes this database; False otherwise."""
        try:
            with path.open("rb") as source:
                header = orjson.loads(_read_chunk(source))
                if header.get("version") != _SNAPSHOT_VERSION:
                    return False
                anchor = conn.execute(
                    text("SELECT trace_id FROM traces WHERE seq = :s"), {"s": header["upto"]}
                ).scalar()
                if anchor is None or anchor != header["anchor"]:
                    return False  # another database, or one restored from an older copy
                block_min = array("q", _read_chunk(source))
                block_max = array("q", _read_chunk(source))
                hashes = [np.frombuffer(_read_chunk(source), dtype=np.uint32).copy() for _ in HASHED_COLUMNS]
                terms: dict[Term, BitMap64] = {}
                for _ in range(int(header["terms"])):
                    key = orjson.loads(_read_chunk(source))
                    terms[(key[0], key[1], key[2], key[3])] = BitMap64.deserialize(_read_chunk(source))
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            return False  # missing, partial or foreign: read the log instead
        with self._lock:
            if self.upto:
                return False  # something was indexed meanwhile; keep it
            self._terms, self._block_min, self._block_max = terms, block_min, block_max
            self._hashes, self._hash_base = hashes, int(header["hash_base"])
            self._block_base = int(header["block_base"])
            self.upto = int(header["upto"])
        return True

    # -- answering --------------------------------------------------------------------------------------

    def candidates(
        self, project_id: str, kind: str, filters: dict[str, str], *, time_from: int, time_below: int
    ) -> tuple[BitMap64, Ceiling]:
        """Sequence numbers that may match, and the bound on the time of every row up to a given seq.

        Only blocks whose time envelope overlaps ``time_from < time < time_below`` can hold a match.
        """
        hashed = [(HASHED_COLUMNS.index(c), _hash(v)) for c, v in filters.items() if c in HASHED_COLUMNS]
        with self._lock:
            bitmaps = []
            for column, value in filters.items():
                if column in HASHED_COLUMNS:
                    continue
                bitmap = self._terms.get((project_id, kind, column, value))
                if bitmap is None:
                    return BitMap64(), Ceiling(np.zeros(0, dtype=np.int64), 0)
                bitmaps.append(bitmap)
            found: BitMap64 | None = None
            if bitmaps:
                found = BitMap64.intersection(*bitmaps) if len(bitmaps) > 1 else BitMap64(bitmaps[0])
            # the arrays are only written past ``covered``, and replaced (not resized) when they grow
            base, covered = self._hash_base, max(0, self.upto + 1 - self._hash_base)
            columns = self._hashes
            blocks, block_base = len(self._block_max), self._block_base
            block_min = np.frombuffer(self._block_min, dtype=np.int64, count=blocks).copy()
            block_max = np.frombuffer(self._block_max, dtype=np.int64, count=blocks).copy()
        for i, digest in hashed:
            values = columns[i][: min(covered, columns[i].size)]
            if found is not None and len(found) * 64 < values.size:  # few candidates: look each up
                seqs = np.array(found.to_array(), dtype=np.int64) - base
                seqs = seqs[(seqs >= 0) & (seqs < values.size)]
                found = BitMap64((seqs[values[seqs] == digest] + base).tolist())
            else:
                hits = BitMap64((np.flatnonzero(values == digest) + base).tolist())
                found = hits if found is None else found & hits
        assert found is not None  # filters is never empty here
        if not found:
            return found, Ceiling(block_max, block_base)
        outside = (block_max <= time_from) | (block_min >= time_below)
        if outside.any():
            found -= _blocks_as_bitmap(np.flatnonzero(outside) + block_base)
        return found, Ceiling(np.maximum.accumulate(block_max), block_base)

    @property
    def terms(self) -> int:
        return len(self._terms)


_SNAPSHOT_VERSION = 3


def _write_chunk(out: BinaryIO, data: bytes) -> None:
    out.write(len(data).to_bytes(8, "little"))
    out.write(data)


def _read_chunk(source: BinaryIO) -> bytes:
    size = int.from_bytes(source.read(8), "little")
    data = source.read(size)
    if len(data) != size:
        raise ValueError("snapshot ends early")
    return data


class Ceiling:
    """The largest ``time`` of any indexed row with a seq in or before a given seq's block."""

    def __init__(self, running_max: np.ndarray[Any, Any], block_base: int) -> None:
        self._running_max = running_max
        self._block_base = block_base

    def __call__(self, seq: int) -> int:
        block = seq // BLOCK - self._block_base
        if block < 0:
            return -1  # before the first indexed block: nothing there
        return int(self._running_max[min(block, len(self._running_max) - 1)])


def _hash(value: str | None) -> int:
    """A value's 32-bit digest, never 0 (which marks "no value")."""
    return zlib.crc32(value.encode()) | 1 if value is not None else 0


def _blocks_as_bitmap(blocks: np.ndarray[Any, Any]) -> BitMap64:
    """The sequence numbers of the given (sorted) blocks, built from runs of adjacent blocks."""
    out = BitMap64()
    if not len(blocks):
        return out
    breaks = np.flatnonzero(np.diff(blocks) != 1)
    starts = np.concatenate(([blocks[0]], blocks[breaks + 1]))
    ends = np.concatenate((blocks[breaks], [blocks[-1]]))
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        out.add_range(start * BLOCK, (end + 1) * BLOCK)
    return out


_REGISTRY: dict[str, tuple[TermIndex, int]] = {}
_REGISTRY_LOCK = threading.Lock()


def open_for(path: str) -> TermIndex:
    """This process's index of the SQLite file at ``path``; pair every call with :func:`close_for`."""
    with _REGISTRY_LOCK:
        index, users = _REGISTRY.get(path, (TermIndex(), 0))
        _REGISTRY[path] = (index, users + 1)
        return index


def close_for(path: str) -> None:
    with _REGISTRY_LOCK:
        index, users = _REGISTRY.get(path, (None, 0))
        if index is None:
            return
        if users <= 1:
            del _REGISTRY[path]
        else:
            _REGISTRY[path] = (index, users - 1)


def lookup(path: str | None) -> TermIndex | None:
    """The index open for ``path`` in this process, if a :class:`~opencts.store.Database` opened one."""
    entry = _REGISTRY.get(path) if path else None
    return entry[0] if entry else None
