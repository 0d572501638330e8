"""File records: what the transfer wrote, for the digests, the verifier's tests and the query.

A record is written in the same transaction that checks the writer still holds the file's claim, so a
record exists exactly when the object it names holds the file's traces (see ``archive.transfer``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, exists, select

from opencts.store.tables import trace_files

WRITTEN = "written"
PLANNED = "planned"


@dataclass(frozen=True, slots=True)
class FileRecord:
    bucket: str
    object_key: str
    #: hex SHA-256 of the object's bytes as stored (compressed, encrypted)
    sha256: str
    size: int
    trace_count: int
    first_seq: int
    last_seq: int
    oldest_time: int
    newest_time: int
    stamp_ms: int
    written_at: int


def written_files(
    conn: Connection,
    tracker_id: str,
    start_ms: int,
    end_ms: int,
    *,
    after_key: str | None = None,
    limit: int | None = None,
) -> list[FileRecord]:
    """The tracker's written files whose stamp is in ``[start_ms, end_ms)``, in key order (a page of
    ``limit`` after ``after_key``, for the files API)."""
    f = trace_files.c
    conds = [f.tracker_id == tracker_id, f.status == WRITTEN, f.stamp_ms >= start_ms, f.stamp_ms < end_ms]
    if after_key is not None:
        conds.append(f.object_key > after_key)
    rows = conn.execute(
        select(
            f.bucket,
            f.object_key,
            f.sha256,
            f.size,
            f.trace_count,
            f.first_seq,
            f.last_seq,
            f.oldest_time,
            f.newest_time,
            f.stamp_ms,
            f.written_at,
        )
        .where(*conds)
        .order_by(f.object_key)
        .limit(limit)
    )
    return [FileRecord(**row._mapping) for row in rows]


def unwritten_before(conn: Connection, tracker_id: str, end_ms: int) -> bool:
    """True while a file of the tracker stamped before ``end_ms`` is planned but not written yet."""
    f = trace_files.c
    stmt = select(exists().where(f.tracker_id == tracker_id, f.status == PLANNED, f.stamp_ms < end_ms))
    return bool(conn.execute(stmt).scalar())
