"""Append to and read from the trace log. Dialect-specific SQL (upserts, append ordering) lives here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from hashlib import sha256
from itertools import chain
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    BigInteger,
    Connection,
    Row,
    String,
    and_,
    any_,
    bindparam,
    delete,
    func,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite

from opencts.store import term_index
from opencts.store.tables import FILTER_COLUMNS, traces
from opencts.store.term_index import INDEXED_COLUMNS, TermIndex

# SQLite limits host parameters per statement (32,766); 22 columns x 1,000 rows stays well under it.
_INSERT_CHUNK = 1000
_ADVISORY_APPEND_LOCK = 0x0C75  # one PostgreSQL lock id: appends are serialised so seq order == commit order


class TraceRow(NamedTuple):
    """One row to append: the indexed columns plus the JSON body, in the INSERT's column order.

    A tuple rather than a dataclass: its values go to SQLite as they are, and a batch of them crosses from
    an ingest worker process as plain tuples (``tuple.__new__(TraceRow, values)`` rebuilds one in one C
    call, where a dataclass is unpickled field by field).
    """

    project_id: str
    trace_id: str
    kind: str
    time: int
    record_time: int
    trace_name: str
    trace_rating: str
    trace_type: str
    service_type: str
    resource_type: str | None
    resource_id: str | None
    resource_name: str | None
    user_name: str | None
    access_key_id: str | None
    tracker_name: str
    enterprise_project_id: str | None
    body: bytes
    source_ip: str | None = None
    code: str | None = None
    request_id: str | None = None
    #: who posted the trace (``opencts.traces.submitter``): set by the server, shown by the CSV export
    submitter: str | None = None


def trace_key(project_id: str, trace_id: str) -> bytes:
    """The log's identity of a trace: the first 16 bytes of SHA-256 over its project and trace id.

    The unique index is over this key rather than over the two strings: a random trace id lands on a
    random leaf page, so every append dirties one, and a 16-byte entry fits three times as many to a page
    as the 75 bytes of (project_id, trace_id). At 128 bits, two different pairs meet by chance about once
    in 10^19 logs of 10^10 traces. The length prefix keeps ("ab", "c") apart from ("a", "bc").
    Migration 0007 computes the same key in SQL for PostgreSQL.
    """
    return sha256(f"{len(project_id)}:{project_id}{trace_id}".encode("utf-8", "surrogatepass")).digest()[:16]


def append(conn: Connection, rows: Sequence[TraceRow]) -> set[str]:
    """Append rows of one project; return the trace ids actually inserted (see :func:`append_keys`)."""
    return {trace_id for _, trace_id in append_keys(conn, rows)}


def append_keys(conn: Connection, rows: Sequence[TraceRow]) -> dict[tuple[str, str], int]:
    """Insert rows whose (project, trace_id) is new; return the seq of each (project_id, trace_id) inserted.

    Idempotence is the unique constraint's job, so a retried batch can race with itself and still never
    duplicate. On PostgreSQL an advisory transaction lock makes sequence order equal commit order, which
    consumers rely on when they read "everything after my cursor".
    """
    if not rows:
        return {}
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return _append_sqlite(conn, rows)
    if dialect == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_APPEND_LOCK})
        insert: Any = postgresql.insert(traces)
    else:
        insert = sqlite.insert(traces)
    stmt = insert.on_conflict_do_nothing(index_elements=["trace_key"]).returning(
        traces.c.project_id, traces.c.trace_id, traces.c.seq
    )
    inserted: dict[tuple[str, str], int] = {}
    for start in range(0, len(rows), _INSERT_CHUNK):
        params = [_row_params(r) for r in rows[start : start + _INSERT_CHUNK]]
        inserted.update(((r[0], r[1]), r[2]) for r in conn.execute(stmt, params))
    return inserted


_term_values = attrgetter(*INDEXED_COLUMNS)


def feed_index(index: TermIndex, rows: Sequence[TraceRow], inserted: dict[tuple[str, str], int]) -> None:
    """Hand rows :func:`append_keys` just committed to the term index, in seq order."""
    fed = []
    for row in rows:
        seq = inserted.get((row.project_id, row.trace_id))
        if seq is not None:
            fed.append((seq, row.project_id, row.kind, row.time, _term_values(row)))
    fed.sort(key=lambda item: item[0])
    index.feed(fed)


_ROW_COLUMNS = TraceRow._fields
#: rows per multi-row INSERT on SQLite: 100 x 22 parameters, one statement step for all of them
_SQLITE_ROWS_PER_INSERT = 100


def _sqlite_insert(rows: int) -> str:
    marks = f"({', '.join('?' * (len(_ROW_COLUMNS) + 1))})"
    return (
        f"INSERT INTO traces ({', '.join(_ROW_COLUMNS)}, trace_key) VALUES {', '.join([marks] * rows)}"
        " ON CONFLICT (trace_key) DO NOTHING"
    )


_SQLITE_INSERT_ONE = _sqlite_insert(1)
_SQLITE_INSERT_MANY = _sqlite_insert(_SQLITE_ROWS_PER_INSERT)
_SQLITE_LAST_SEQ = "SELECT coalesce(max(seq), 0) FROM traces"


def _append_sqlite(conn: Connection, rows: Sequence[TraceRow]) -> dict[tuple[str, str], int]:
    """Multi-row INSERTs, then the seqs: usually known without reading anything back.

    This is the writer's hot loop. SQLAlchemy's compiled path spends as long preparing parameters as
    SQLite spends inserting. A statement per row (``executemany``) lets go of the GIL for each row's step
    and must win it back from whichever thread holds it, for up to the switch interval each time: under
    load the writer would wait more than it writes. One step per hundred rows waits a hundredth as
    often. (``RETURNING`` costs SQLite more per row than the read-back below.) Inside ``BEGIN IMMEDIATE``
    nobody else appends, and SQLite numbers each new row max(seq) + 1; when every row went in and the
    numbers add up, row i got ``before + 1 + i``. Otherwise (duplicates) the new rows are read back by
    seq range.
    """
    raw: Any = conn.connection.driver_connection
    params = [(*row, trace_key(row.project_id, row.trace_id)) for row in rows]
    step = _SQLITE_ROWS_PER_INSERT
    whole = len(params) - len(params) % step
    before = int(raw.execute(_SQLITE_LAST_SEQ).fetchone()[0])
    inserted = 0
    for start in range(0, whole, step):
        inserted += raw.execute(
            _SQLITE_INSERT_MANY, list(chain.from_iterable(params[start : start + step]))
        ).rowcount
    if whole < len(params):
        inserted += raw.executemany(_SQLITE_INSERT_ONE, params[whole:]).rowcount
    after = int(raw.execute(_SQLITE_LAST_SEQ).fetchone()[0])
    if inserted == len(rows) and after == before + inserted:
        return {(row.project_id, row.trace_id): before + 1 + i for i, row in enumerate(rows)}
    found = raw.execute("SELECT project_id, trace_id, seq FROM traces WHERE seq > ?", (before,))
    return {(p, t): seq for p, t, seq in found}


def _row_params(row: TraceRow) -> dict[str, Any]:
    return {**row._asdict(), "trace_key": trace_key(row.project_id, row.trace_id)}


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ends, in the list's order (time descending, then seq descending)."""

    time: int
    seq: int


def position_of(conn: Connection, project_id: str, trace_id: str) -> Position | None:
    row = conn.execute(
        select(traces.c.time, traces.c.seq).where(
            traces.c.trace_key == trace_key(project_id, trace_id),
            traces.c.project_id == project_id,
            traces.c.trace_id == trace_id,
        )
    ).first()
    return Position(row.time, row.seq) if row else None


#: what a page row holds unless the caller picks its columns: enough to page on and answer ListTraces
PAGE_COLUMNS: tuple[str, ...] = ("seq", "time", "trace_id", "body")


def page(
    conn: Connection,
    *,
    project_id: str,
    kind: str,
    time_from: int,
    time_to: int,
    filters: dict[str, str],
    after: Position | None,
    limit: int,
    index: TermIndex | None,
    columns: Sequence[str] = PAGE_COLUMNS,
) -> list[Row[Any]]:
    """Up to ``limit`` traces, newest first, strictly between ``time_from`` and ``time_to``.

    Keyset paging on (time, seq) makes page 50 as cheap as page 1. ``filters`` keys are columns of
    :data:`FILTER_COLUMNS`; ``index`` (the database's :attr:`~opencts.store.Database.term_index`) answers
    them (see :mod:`opencts.store.term_index`) and SQL reads the page's rows by seq. Without filters, or
    while the index is still catching up, SQL walks a B-tree in time order: ``ix_traces_time``, and on
    PostgreSQL one per filter column as well.
    """
    conds = [traces.c.project_id == project_id, traces.c.kind == kind, traces.c.time > time_from]
    upper = time_to  # every match has time < upper
    if after is None or after.time >= time_to:  # a marker from a later window changes nothing
        conds.append(traces.c.time < time_to)
    else:
        # The row-value comparison alone is correct, but SQLite does not seek with it: each page would
        # re-walk every row already returned. One plain upper bound on time lets the index seek there.
        conds.append(traces.c.time <= after.time)
        conds.append(tuple_(traces.c.time, traces.c.seq) < tuple_(after.time, after.seq))
        upper = after.time + 1
    for column, value in filters.items():
        if column not in FILTER_COLUMNS:
            raise ValueError(f"not a filter column: {column}")
        conds.append(traces.c[column] == value)
    wanted = [*columns, *(name for name in ("seq", "time") if name not in columns)]
    stmt = (
        select(*(traces.c[name] for name in wanted))
        .where(and_(*conds))
        .order_by(traces.c.time.desc(), traces.c.seq.desc())
    )
    # without filters no index helps; without a caught-up one, SQL is slower but as exact
    if filters and index is not None and index.refresh(conn, max_lag=term_index.MAX_QUERY_LAG):
        order = itemgetter(wanted.index("time"), wanted.index("seq"))
        rank = partial(
            index.rank, project_id, kind, filters, time_from=time_from, time_below=min(time_to, upper)
        )
        return _page_of_ranked(conn, stmt, rank, after, limit, order)
    return list(conn.execute(stmt.limit(limit)).all())


_SEQS = func.json_each(bindparam("seqs", type_=String)).table_valued("value")
_SEQ_ARRAY = bindparam("seqs", type_=postgresql.ARRAY(BigInteger))


def _page_of_ranked(
    conn: Connection,
    stmt: Any,
    rank: Callable[..., list[tuple[int, int]]],
    after: Position | None,
    limit: int,
    order: Callable[[Any], Any],
) -> list[Row[Any]]:
    """The page the term index ranks first, read by seq: SQL sees only the page's own rows.

    Every row is re-checked by ``stmt`` (all filters and the time window). A candidate the re-check
    drops (a hash that collided, a row gone since) leaves the page short: the next candidates after the
    last one tried fill it. ``order`` gives a row's (time, seq) by position: a Row attribute costs a
    failed lookup first.
    """
    sqlite = conn.dialect.name == "sqlite"
    # SQLite takes the seqs as one JSON parameter (its limit on parameters), PostgreSQL as an array
    by_seq = stmt.where(
        traces.c.seq.in_(select(_SEQS.c.value)) if sqlite else traces.c.seq == any_(_SEQ_ARRAY)
    )
    rows: list[Row[Any]] = []
    bound = (after.time, after.seq) if after is not None else None
    wanted = limit
    while True:
        ranked = rank(after=bound, count=wanted)
        if not ranked:
            break
        seqs = [seq for _, seq in ranked]
        rows.extend(conn.execute(by_seq, {"seqs": orjson.dumps(seqs).decode() if sqlite else seqs}).all())
        if len(ranked) < wanted or len(rows) >= limit:
            break  # no candidate is left, or the page is full
        bound = ranked[-1]
        wanted = max(limit - len(rows), 4 * wanted)  # the re-check dropped some: look further at once
    rows.sort(key=order, reverse=True)
    return rows[:limit]


def by_trace_id(
    conn: Connection, *, project_id: str, kind: str, trace_id: str, not_before: int
) -> list[Row[Any]]:
    stmt = select(traces.c.seq, traces.c.time, traces.c.trace_id, traces.c.body).where(
        traces.c.trace_key == trace_key(project_id, trace_id),
        traces.c.project_id == project_id,
        traces.c.kind == kind,
        traces.c.trace_id == trace_id,
        traces.c.time > not_before,
    )
    return list(conn.execute(stmt))


def read_after(conn: Connection, position: int, limit: int, *, with_body: bool = True) -> list[Row[Any]]:
    """The log in append order, for consumers: rows with seq greater than ``position``."""
    columns = [traces.c.seq, traces.c.project_id, traces.c.record_time]
    if with_body:
        columns.append(traces.c.body)
    stmt = select(*columns).where(traces.c.seq > position).order_by(traces.c.seq).limit(limit)
    return list(conn.execute(stmt).all())


def bodies(conn: Connection, first: int, last: int, project_ids: Sequence[str]) -> list[tuple[str, bytes]]:
    """(project_id, body) of the log rows ``first <= seq <= last`` of these projects, in seq order."""
    stmt = (
        select(traces.c.project_id, traces.c.body)
        .where(traces.c.seq >= first, traces.c.seq <= last, traces.c.project_id.in_(list(project_ids)))
        .order_by(traces.c.seq)
    )
    return [(row[0], row[1]) for row in conn.execute(stmt)]


def delete_through(conn: Connection, after: int, through: int) -> int:
    """Delete the log rows with ``after < seq <= through`` (retention); return how many went."""
    result = conn.execute(delete(traces).where(traces.c.seq > after, traces.c.seq <= through))
    return int(result.rowcount or 0)


def last_seq(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(traces.c.seq), 0))).scalar_one())


def count(conn: Connection, project_id: str | None = None) -> int:
    stmt = select(func.count()).select_from(traces)
    if project_id is not None:
        stmt = stmt.where(traces.c.project_id == project_id)
    return int(conn.execute(stmt).scalar_one())


def count_matching(
    conn: Connection, *, project_id: str, kind: str, time_from: int, time_to: int, filters: dict[str, str]
) -> int:
    """How many traces :func:`page` would return over the whole window (an export's size, told ahead)."""
    conds = [
        traces.c.project_id == project_id,
        traces.c.kind == kind,
        traces.c.time > time_from,
        traces.c.time < time_to,
    ]
    for column, value in filters.items():
        if column not in FILTER_COLUMNS:
            raise ValueError(f"not a filter column: {column}")
        conds.append(traces.c[column] == value)
    return int(conn.execute(select(func.count()).select_from(traces).where(and_(*conds))).scalar_one())


def range_bodies(
    conn: Connection, *, first: int, last: int, project_id: str, kind: str, tracker_name: str | None = None
) -> list[tuple[int, str, bytes]]:
    """(seq, service_type, body) of one project's traces of ``kind`` with ``first <= seq <= last``, in seq
    order: what the archive transfer writes into files. On SQLite through the driver (the rows are many
    and their bodies large: SQLAlchemy's row processing would double the cost of the read). ``NOT INDEXED``
    keeps SQLite on the seq range: it would otherwise take the (project, kind, time) index and sort."""
    if conn.dialect.name == "sqlite":
        sql = (
            "SELECT seq, service_type, body FROM traces NOT INDEXED"
            " WHERE seq >= ? AND seq <= ? AND project_id = ? AND kind = ?"
        )
        params: list[Any] = [first, last, project_id, kind]
        if tracker_name is not None:
            sql += " AND tracker_name = ?"
            params.append(tracker_name)
        raw: Any = conn.connection.driver_connection
        rows: list[tuple[int, str, bytes]] = raw.execute(sql + " ORDER BY seq", params).fetchall()
        return rows
    t = traces.c
    conds = [t.seq >= first, t.seq <= last, t.project_id == project_id, t.kind == kind]
    if tracker_name is not None:
        conds.append(t.tracker_name == tracker_name)
    stmt = select(t.seq, t.service_type, t.body).where(*conds).order_by(t.seq)
    return [(row[0], row[1], bytes(row[2])) for row in conn.execute(stmt)]
