"""The term index: how ListTraces filters are answered without walking a B-tree per filter column.

A B-tree per filter made every append touch a dozen indexes, and SQLite still used only one of them for a
query that combined filters: a rare or empty combination (a user who never touched RDS) walked every row
of the chosen index. PostgreSQL walks its chosen index the same way, and fetches each row it walks from
the heap to test the other filters: when traces arrive out of time order every such row is on a page of
its own. So both backends answer filters here. Each *term* (project, kind, column, value) owns a
compressed bitmap of the sequence numbers that carry it (pyroaring's 64-bit bitmaps: seq counts every
trace ever appended, and 32 bits would run out after a few months of heavy traffic). A query ANDs the
bitmaps of its filters, so a combination costs what its answer costs, and an append adds a few bits
instead of ten B-tree entries.

Bitmaps are ordered by ``seq`` (arrival), but ListTraces is ordered by ``time``, and the two need not
agree at all: an import of archives, a backfill, producers with skewed clocks. So the index also keeps
each seq's ``time`` in one array, and a bitmap of the seqs whose time falls in each :data:`BUCKET_MS` of
time. A query ranks its candidates by (time, seq) itself and hands SQL only the seqs of the page: a few
candidates are looked up in the time array at once (numpy); many are cut first to the newest time buckets
that hold a page of them. Either way the cost follows the page and the filters' selectivity, never the
order the traces arrived in.

The index is derived data and lives in the memory of each process that reads the database. It catches up
from the log itself (``refresh``), and the writer feeds it what it has just committed (``feed``), so a
trace is findable as soon as its ingest call answers. Catching up by seq is sound on both backends: SQLite
has one writer, and PostgreSQL appends under one advisory lock, so a committed seq has every smaller seq
committed or rolled back before it; nodes sharing a PostgreSQL log each catch up on their own. A bitmap
may hold a sequence number whose row is gone (retention) or was rolled back: candidate rows are always
re-checked against every filter in SQL, so the bitmaps only have to avoid false negatives, never false
positives. A seq's time never changes, and every seq in a bitmap has its time in the array, so the ranking
is exact for the rows that exist.
"""

from __future__ import annotations

import threading
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pyroaring import BitMap64
from sqlalchemy import Connection, text

from opencts.clock import HOUR_MS
from opencts.store import term_snapshot
from opencts.store.tables import FILTER_COLUMNS
from opencts.store.term_snapshot import Term

#: Filter columns whose values are nearly unique (resources). A bitmap per value would cost a Python call
#: per row, and a B-tree on a random key dirties a page per row. Instead the index keeps a 32-bit hash of
#: the value per seq, in one array; a query compares the whole array at once (numpy) and re-checks the
#: few rows that hash alike in SQL.
HASHED_COLUMNS: tuple[str, ...] = ("resource_id", "resource_name")
#: The other filter columns, answered by bitmaps. Their values repeat (users, services, operations), so a
#: bitmap per value stays small and a batch of appends updates a few dozen of them.
TERM_COLUMNS: tuple[str, ...] = tuple(c for c in FILTER_COLUMNS if c not in HASHED_COLUMNS)
#: what :meth:`TermIndex.feed` takes after (seq, project_id, kind, time), in this order
INDEXED_COLUMNS = TERM_COLUMNS + HASHED_COLUMNS
#: the width of a time bucket: a bucket holds the seqs whose time falls in it
BUCKET_MS = HOUR_MS
#: up to this many candidates are ranked from the time array directly; more are cut to buckets first
DIRECT_RANK = 1 << 15
#: the most buckets one step of a walk reads together (a step reads twice as many as the one before)
MAX_BUCKET_STEP = 64
#: :meth:`TermIndex.tidy` sorts the value hashes again once this many rows (or an eighth) are unsorted
SORT_AFTER = 1 << 20
#: one sorted hash in this many is kept as a fence for the binary search
FENCE = 64
#: rows read per catch-up statement, so a long catch-up never holds the lock for long
CATCH_UP_BATCH = 50_000
#: a query that finds the index further behind than this reads through SQL instead of waiting
MAX_QUERY_LAG = 200_000

_SELECT_AFTER = (
    "SELECT seq, project_id, kind, time, "
    + ", ".join(INDEXED_COLUMNS)
    + " FROM traces WHERE seq > {mark} AND seq <= {mark} ORDER BY seq"
)


def _read_after(conn: Connection, after: int, through: int) -> list[tuple[Any, ...]]:
    """The indexed columns of the log rows ``after < seq <= through``, as plain tuples.

    A catch-up reads the whole log once per start (PostgreSQL keeps no snapshot): the driver's own cursor
    gives tuples at half the cost of building SQLAlchemy rows.
    """
    mark = "?" if conn.dialect.name == "sqlite" else "%s"
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(_SELECT_AFTER.format(mark=mark), (after, through))
        return list(cursor.fetchall())
    finally:
        cursor.close()


class TermIndex:
    """Bitmaps of sequence numbers per term and per time bucket, plus the time of every seq."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._catch_up = threading.Lock()  # one catch-up at a time; queries never queue behind it
        self._terms: dict[Term, BitMap64] = {}
        #: the same bitmaps by (project, kind, column), then value: the dashboard's tops and counts read one
        #: project's values of a column without walking every tenant's terms (under the lock ingest feeds by)
        self._columns: dict[tuple[str, str, str], dict[str, BitMap64]] = {}
        #: time // BUCKET_MS -> the seqs with a time in that bucket
        self._buckets: dict[int, BitMap64] = {}
        #: per hashed column, the value hash of each seq from ``_hash_base`` on (0: no value)
        self._hashes = [np.zeros(0, dtype=np.uint32) for _ in HASHED_COLUMNS]
        #: the time of each seq from ``_hash_base`` on (meaningless where no row was indexed)
        self._times = np.zeros(0, dtype=np.int64)
        self._hash_base = 0
        #: per hashed column, the offsets below ``_sorted_upto`` in the order of their hashes, and every
        #: :data:`FENCE`-th hash in that order; built by :meth:`tidy` for ``_sorted_base``. A lookup is a
        #: binary search over the fences, a compare of the few offsets between two, and a scan of the rest.
        self._sorted: list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]] = []
        self._sorted_upto = 0
        self._sorted_base = -1
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
                rows = _read_after(conn, self.upto, through)
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
        upto = self.upto
        for row in rows:
            seq = row[0]
            if seq <= upto:
                continue  # already read by a refresh
            if contiguous and seq != upto + 1:
                break  # a gap: refresh will read it, and everything after it, from the log
            upto = seq
            taken.append(row)
        if taken:
            self._index_columns(taken)
            self._index_arrays(taken)
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
                        terms[term] = bitmap = BitMap64(found)
                        self._columns.setdefault((project_id, kind, column), {})[value] = bitmap
                    else:
                        bitmap.update(found)

    def _index_arrays(self, rows: list[tuple[int, str, str, int, Sequence[str | None]]]) -> None:
        """Each seq's time and value hashes go to the arrays; its seq to the bitmap of its time bucket."""
        count = len(rows)
        seqs = np.fromiter((row[0] for row in rows), dtype=np.int64, count=count)
        times = np.fromiter((row[3] for row in rows), dtype=np.int64, count=count)
        if not self._times.size:
            self._hash_base = int(seqs[0])
        offsets = seqs - self._hash_base
        needed = int(offsets[-1]) + 1
        if self._times.size < needed:
            size = max(needed, 2 * self._times.size, 1 << 16)
            self._times = _grown(self._times, size)
            self._hashes = [_grown(column, size) for column in self._hashes]
        self._times[offsets] = times
        for i, column in enumerate(self._hashes):
            at = len(TERM_COLUMNS) + i
            column[offsets] = np.fromiter((_hash(row[4][at]) for row in rows), dtype=np.uint32, count=count)
        self._bucket(seqs, times)

    def _bucket(self, seqs: np.ndarray[Any, Any], times: np.ndarray[Any, Any]) -> None:
        keys = times // BUCKET_MS
        first = int(keys[0])
        buckets = self._buckets
        if (keys == first).all():  # the usual batch: everything within one bucket
            found = buckets.get(first)
            if found is None:
                buckets[first] = BitMap64(seqs.tolist())
            else:
                found.update(seqs.tolist())
            return
        order = np.argsort(keys, kind="stable")
        keys, seqs = keys[order], seqs[order]
        starts = np.flatnonzero(np.diff(keys)) + 1
        firsts = keys[np.concatenate(([0], starts))].tolist()
        for key, part in zip(firsts, np.split(seqs, starts), strict=True):
            found = buckets.get(key)
            if found is None:
                buckets[key] = BitMap64(part.tolist())
            else:
                found.update(part.tolist())

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
                    values = self._columns[term[:3]]
                    del values[term[3]]
                    if not values:
                        del self._columns[term[:3]]
            for key in list(self._buckets):
                bitmap = self._buckets[key]
                bitmap.remove_range(0, below)
                if not bitmap:
                    del self._buckets[key]
            gone = min(below - self._hash_base, self._times.size)
            if gone > 0:
                self._hashes = [column[gone:].copy() for column in self._hashes]
                self._times = self._times[gone:].copy()
                self._hash_base += gone
            self._pruned_below = below

    # -- surviving a restart ----------------------------------------------------------------------------

    def save(self, path: Path, conn: Connection) -> bool:
        """Write the index to ``path`` (:mod:`~opencts.store.term_snapshot`) for the next start.

        The file names the last row it covers (seq, trace_id); :meth:`load` trusts it only if the
        database still holds that very row. Each bitmap is copied under the lock on its own, so feeding
        never waits for the whole file; a bitmap may hold a few seqs past the recorded one, which a
        catch-up adds again (adding is idempotent).
        """
        with self._lock:
            upto = self.upto
            terms = list(self._terms.items())
            covered = max(0, upto + 1 - self._hash_base)
            hashes = [column[:covered].tobytes() for column in self._hashes]
            times = self._times[:covered].tobytes()
            buckets = list(self._buckets.items())
            hash_base = self._hash_base
        anchor_id = term_snapshot.anchor(conn, upto)
        if anchor_id is None:
            return False

        def serialise(bitmap: BitMap64) -> bytes:
            with self._lock:
                return bytes(bitmap.serialize())

        term_snapshot.write(
            path,
            upto=upto,
            anchor_id=anchor_id,
            hash_base=hash_base,
            times=times,
            hashes=hashes,
            terms=terms,
            buckets=buckets,
            serialise=serialise,
        )
        return True

    def load(self, path: Path, conn: Connection) -> bool:
        """Read a file :meth:`save` wrote, if it still describes this database; False otherwise."""
        found = term_snapshot.read(path, conn, hashed_columns=len(HASHED_COLUMNS))
        if found is None:
            return False
        with self._lock:
            if self.upto:
                return False  # something was indexed meanwhile; keep it
            self._terms, self._buckets = found.terms, found.buckets
            self._columns = _by_column(found.terms)
            self._hashes, self._times, self._hash_base = found.hashes, found.times, found.hash_base
            self.upto = found.upto
        return True

    # -- answering --------------------------------------------------------------------------------------

    def rank(
        self,
        project_id: str,
        kind: str,
        filters: dict[str, str],
        *,
        time_from: int,
        time_below: int,
        after: tuple[int, int] | None,
        count: int,
    ) -> list[tuple[int, int]]:
        """The first ``count`` candidates in the list's order, as (time, seq), newest first.

        A candidate matches every filter's bitmap (or hash) and has ``time_from < time < time_below`` and
        (time, seq) < ``after``. Fewer than ``count`` means there are no more candidates. A caller whose
        rows fail the SQL re-check asks again with ``after`` set to the last candidate it was given.
        """
        found = self.candidates(project_id, kind, filters)
        if not found:
            return []
        with self._lock:
            times, base = self._times, self._hash_base
            covered = max(0, min(self.upto + 1 - base, times.size))
        if len(found) > DIRECT_RANK:
            return self._rank_by_buckets(found, times, base, covered, time_from, time_below, after, count)
        seqs = np.frombuffer(found.to_array(), dtype=np.uint64).astype(np.int64) - base
        seqs = seqs[(seqs >= 0) & (seqs < covered)]
        return _top(seqs + base, times[seqs], time_from, time_below, after, count)

    def _rank_by_buckets(
        self,
        found: BitMap64,
        times: np.ndarray[Any, Any],
        base: int,
        covered: int,
        time_from: int,
        time_below: int,
        after: tuple[int, int] | None,
        count: int,
    ) -> list[tuple[int, int]]:
        """Rank many candidates by walking time buckets newest first until a page of them is in hand.

        Buckets partition time, so once the buckets read hold ``count`` matches nothing in an older one
        can rank before them. Each step reads twice as many buckets as the one before (as one union), so
        candidates that all lie far back cost a few steps, not one per bucket.
        """
        newest = time_below - 1 if after is None else min(time_below - 1, after[0])
        low, high = (time_from + 1) // BUCKET_MS, newest // BUCKET_MS
        with self._lock:
            keys = sorted((key for key in self._buckets if low <= key <= high), reverse=True)
        seq_parts: list[np.ndarray[Any, Any]] = []
        time_parts: list[np.ndarray[Any, Any]] = []
        matched, step, at = 0, 1, 0
        while at < len(keys) and matched < count:
            with self._lock:
                group = [self._buckets[key] for key in keys[at : at + step] if key in self._buckets]
                part = found & (group[0] if len(group) == 1 else BitMap64.union(*group)) if group else None
            at += step
            step = min(2 * step, MAX_BUCKET_STEP)
            if not part:
                continue
            seqs = np.frombuffer(part.to_array(), dtype=np.uint64).astype(np.int64) - base
            seqs = seqs[(seqs >= 0) & (seqs < covered)]
            part_times = times[seqs]
            inside = _inside(seqs + base, part_times, time_from, time_below, after)
            seq_parts.append(seqs[inside] + base)
            time_parts.append(part_times[inside])
            matched += int(inside.sum())
        if not seq_parts:
            return []
        seqs, part_times = np.concatenate(seq_parts), np.concatenate(time_parts)
        return _top(seqs, part_times, time_from, time_below, after, count)

    def candidates(self, project_id: str, kind: str, filters: dict[str, str]) -> BitMap64:
        """The seqs that carry every filter's term (or value hash): a superset of the matches."""
        hashed = [(HASHED_COLUMNS.index(c), _hash(v)) for c, v in filters.items() if c in HASHED_COLUMNS]
        with self._lock:
            bitmaps = []
            for column, value in filters.items():
                if column in HASHED_COLUMNS:
                    continue
                bitmap = self._terms.get((project_id, kind, column, value))
                if bitmap is None:
                    return BitMap64()
                bitmaps.append(bitmap)
            found: BitMap64 | None = None
            if bitmaps:
                found = BitMap64.intersection(*bitmaps) if len(bitmaps) > 1 else BitMap64(bitmaps[0])
            # the arrays are only written past ``covered``, and replaced (not resized) when they grow
            base, covered = self._hash_base, max(0, self.upto + 1 - self._hash_base)
            columns = self._hashes
            ordered = self._sorted if self._sorted_base == base else []
            sorted_upto = self._sorted_upto
        for i, digest in hashed:
            values = columns[i][: min(covered, columns[i].size)]
            if found is not None and len(found) * 64 < values.size:  # few candidates: look each up
                seqs = np.frombuffer(found.to_array(), dtype=np.uint64).astype(np.int64) - base
                seqs = seqs[(seqs >= 0) & (seqs < values.size)]
                found = BitMap64((seqs[values[seqs] == digest] + base).tolist())
                continue
            if ordered:  # a binary search over the sorted part, a scan of what came after it
                order, fences = ordered[i]
                low = max(0, int(np.searchsorted(fences, digest, "left")) - 1) * FENCE
                high = int(np.searchsorted(fences, digest, "right")) * FENCE
                near = order[low:high].astype(np.int64)
                rest = np.flatnonzero(values[sorted_upto:] == digest) + sorted_upto
                offsets = np.concatenate((np.sort(near[values[near] == digest]), rest))
            else:
                offsets = np.flatnonzero(values == digest)
            hits = BitMap64((offsets + base).tolist())
            found = hits if found is None else found & hits
        return found if found is not None else BitMap64()

    def bucket_counts(
        self, project_id: str, kind: str, column: str, *, first_bucket: int, last_bucket: int
    ) -> dict[int, dict[str, int]]:
        """Per time bucket from ``first_bucket`` to ``last_bucket``, how many seqs carry each value of
        ``column`` (a dashboard's traces per hour by rating): a bucket's bitmap intersected with each
        value's. Counts may include a seq whose row is gone but not yet pruned, as in :meth:`top_values`."""
        if column not in TERM_COLUMNS:
            raise ValueError(f"{column} is not a term column of the index")
        with self._lock:
            values = list(self._columns.get((project_id, kind, column), {}).items())
            found: dict[int, dict[str, int]] = {}
            for key in range(first_bucket, last_bucket + 1):
                bucket = self._buckets.get(key)
                counts = {v: b.intersection_cardinality(bucket) for v, b in values} if bucket else {}
                found[key] = {v: n for v, n in counts.items() if n}
        return found

    def top_values(
        self,
        project_id: str,
        kind: str,
        column: str,
        *,
        first_bucket: int,
        last_bucket: int,
        limit: int,
        split_by: str | None = None,
    ) -> list[tuple[tuple[str, ...], int]]:
        """The ``limit`` values of ``column`` that most seqs of the time buckets ``first_bucket`` to
        ``last_bucket`` carry (a dashboard's "top users"), as ((value,), count), most first.

        With ``split_by`` (another term column) each of the top values is split by that column's values,
        and the ``limit`` largest (value, other value) pairs come back: the top operations are trace
        names split by service. Values are split most first until one holds no more seqs than the
        smallest pair kept, so a value whose seqs spread over many others costs no pair its place.
        Counts may include a seq whose row is gone but not yet pruned (retention, a rolled-back append),
        never miss one. Terms are visited largest first, and stop once a term holds fewer seqs in all
        than the smallest count kept, so many rare values cost little.
        """
        if column not in TERM_COLUMNS or (split_by is not None and split_by not in TERM_COLUMNS):
            raise ValueError(f"{column} is not a term column of the index")
        with self._lock:
            parts = [b for key, b in self._buckets.items() if first_bucket <= key <= last_bucket]
            if not parts:
                return []
            window = BitMap64.union(*parts) if len(parts) > 1 else BitMap64(parts[0])
            terms = sorted(
                self._columns.get((project_id, kind, column), {}).items(),
                key=lambda item: len(item[1]),
                reverse=True,
            )
            if split_by is None:
                return [((value,), n) for value, n in _largest(terms, window, limit)]
            others = sorted(
                self._columns.get((project_id, kind, split_by), {}).items(),
                key=lambda item: len(item[1]),
                reverse=True,
            )
            # every value, most first; a pair never outnumbers its value, so the walk stops at the first
            # value with no more seqs than the smallest pair kept
            pairs: list[tuple[tuple[str, ...], int]] = []
            for value, n in _largest(terms, window, len(terms)):
                if len(pairs) >= limit and n <= pairs[-1][1]:
                    break
                inside = window & self._terms[(project_id, kind, column, value)]
                pairs += [((value, other), m) for other, m in _largest(others, inside, limit)]
                pairs.sort(key=lambda item: (-item[1], item[0]))
                del pairs[limit:]
        pairs.sort(key=lambda item: (-item[1], item[0]))
        return pairs[:limit]

    def tidy(self) -> None:
        """Sort the value hashes of the resource columns, once enough have come since the last sort.

        A lookup is then a binary search plus a scan of the unsorted rest, instead of a scan of every
        row. The upkeep thread calls this; sorting ten million hashes takes about a second.
        """
        with self._lock:
            base, covered = self._hash_base, max(0, min(self.upto + 1 - self._hash_base, self._times.size))
            columns = self._hashes
            unsorted = covered - (self._sorted_upto if self._sorted_base == base else 0)
        if unsorted < max(SORT_AFTER, covered // 8):
            return
        built = []
        for column in columns:
            order = np.argsort(column[:covered], kind="stable")
            fences = column[order[::FENCE]]
            built.append((order.astype(np.uint32 if covered < 2**32 else np.int64), fences))
        with self._lock:
            if self._hash_base == base:  # a prune moved the arrays meanwhile: the next call sorts again
                self._sorted, self._sorted_upto, self._sorted_base = built, covered, base

    @property
    def terms(self) -> int:
        return len(self._terms)


def _by_column(terms: dict[Term, BitMap64]) -> dict[tuple[str, str, str], dict[str, BitMap64]]:
    """:attr:`TermIndex._columns` for ``terms`` (a snapshot read at start)."""
    found: dict[tuple[str, str, str], dict[str, BitMap64]] = {}
    for term, bitmap in terms.items():
        found.setdefault(term[:3], {})[term[3]] = bitmap
    return found


def _largest(terms: list[tuple[str, BitMap64]], window: BitMap64, limit: int) -> list[tuple[str, int]]:
    """The ``limit`` terms with the most seqs inside ``window``; ``terms`` come largest first, so the walk
    stops at the first term smaller than the smallest count kept."""
    kept: list[tuple[int, str]] = []
    if limit <= 0:
        return []
    for value, bitmap in terms:
        if len(kept) >= limit and len(bitmap) <= kept[-1][0]:
            if len(bitmap) < kept[-1][0]:
                break
            continue
        n = bitmap.intersection_cardinality(window)
        if n:
            kept.append((n, value))
            kept.sort(key=lambda item: (-item[0], item[1]))
            del kept[limit:]
    return [(value, n) for n, value in kept]


def _grown(column: np.ndarray[Any, Any], size: int) -> np.ndarray[Any, Any]:
    """A new, larger array with ``column``'s values first (readers keep the old one meanwhile)."""
    grown = np.zeros(size, dtype=column.dtype)
    grown[: column.size] = column
    return grown


def _inside(
    seqs: np.ndarray[Any, Any],
    times: np.ndarray[Any, Any],
    time_from: int,
    time_below: int,
    after: tuple[int, int] | None,
) -> np.ndarray[Any, Any]:
    """Which (time, seq) lie in the window and, with ``after``, rank after that position."""
    inside = (times > time_from) & (times < time_below)
    if after is not None:
        inside &= (times < after[0]) | ((times == after[0]) & (seqs < after[1]))
    return inside


def _top(
    seqs: np.ndarray[Any, Any],
    times: np.ndarray[Any, Any],
    time_from: int,
    time_below: int,
    after: tuple[int, int] | None,
    count: int,
) -> list[tuple[int, int]]:
    """The ``count`` largest (time, seq) among those :func:`_inside` the bounds, largest first.

    A partial selection finds the count-th largest time; everything newer is in, and of the rows at
    exactly that time the largest seqs fill the page, so ties rank as ``ORDER BY time DESC, seq DESC``.
    """
    inside = _inside(seqs, times, time_from, time_below, after)
    seqs, times = seqs[inside], times[inside]
    if seqs.size > count:
        threshold = times[np.argpartition(times, seqs.size - count)[seqs.size - count]]
        newer = times > threshold
        tied = np.flatnonzero(times == threshold)
        room = count - int(newer.sum())
        tied = tied[np.argsort(seqs[tied])[::-1][:room]]
        keep = np.concatenate((np.flatnonzero(newer), tied))
        seqs, times = seqs[keep], times[keep]
    order = np.lexsort((seqs, times))[::-1]
    return list(zip(times[order].tolist(), seqs[order].tolist(), strict=True))


def _hash(value: str | None) -> int:
    """A value's 32-bit digest, never 0 (which marks "no value")."""
    return zlib.crc32(value.encode()) | 1 if value is not None else 0
