"""Planning trace files: which traces go into which file, decided once, in one transaction.

The planner reads the log after the ``transfer`` cursor (up to :func:`_transfer_bound`), groups the rows
by tracker (a management tracker takes its project's ``system`` traces, a data tracker the ``data``
traces carrying its name) and service folder, cuts each group at :data:`~encoding.MAX_CONTENT`, and in
the same transaction inserts one ``trace_files`` row per file (its object key fixed now, from the
tracker, service and log range) and moves the cursor with a compare-and-set. A second node planning the
same range finds the cursor moved, raises :class:`PlanConflict`, and its transaction rolls back with its
rows: every trace is planned into exactly one file, once. Writing the files is another step
(``archive.transfer``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, func, insert, select, update

from opencts.archive import encoding, layout
from opencts.archive.files import PLANNED
from opencts.store import trace_log
from opencts.store.tables import consumer_cursors, trace_files, traces, trackers
from opencts.store.upsert import insert_ignore

CURSOR = "transfer"
#: log seq numbers (rows, but for gaps) planned by one transaction; a backlog is planned over several
PLAN_BATCH = 20_000


class PlanConflict(Exception):
    """Another node moved the cursor first: this plan is dropped (its transaction rolls back)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A tracker with a bucket, as the planner needs it."""

    tracker_id: str
    project_id: str
    name: str
    kind: str
    bucket: str
    prefix: str | None
    compress: layout.Compress
    by_service: bool
    #: the key encrypting its files, when it encrypts
    kms_id: str | None
    #: days before its files expire (data trackers' ``bucket_lifecycle``)
    lifecycle_days: int | None


def _target(row: Any) -> Target | None:
    config = orjson.loads(row.config)
    obs = config.get("obs_info") or {}
    if not obs.get("bucket_name"):
        return None
    encrypt = bool(config.get("is_support_trace_files_encryption")) and bool(config.get("kms_id"))
    return Target(
        tracker_id=row.id,
        project_id=row.project_id,
        name=row.name,
        kind=row.tracker_type,
        bucket=obs["bucket_name"],
        prefix=obs.get("file_prefix_name") or None,
        compress="json" if obs.get("compress_type") == "json" else "gzip",
        by_service=obs.get("is_sort_by_service", True) is not False,
        kms_id=config["kms_id"] if encrypt else None,
        lifecycle_days=obs.get("bucket_lifecycle") if row.tracker_type == "data" else None,
    )


def targets(conn: Connection) -> list[Target]:
    """Every tracker with a bucket (there are few trackers: they are all read)."""
    rows = conn.execute(
        select(
            trackers.c.id, trackers.c.project_id, trackers.c.name, trackers.c.tracker_type, trackers.c.config
        )
    )
    return [t for t in map(_target, rows) if t is not None]


def _transfer_bound(conn: Connection) -> int:
    """The last seq the transfer may plan (the coordinator gates this on the ledger)."""
    return trace_log.last_seq(conn)


def cursor(conn: Connection) -> int:
    value = conn.execute(
        select(consumer_cursors.c.position).where(consumer_cursors.c.name == CURSOR)
    ).scalar()
    return int(value) if value is not None else 0


def _move_cursor(conn: Connection, old: int, new: int, now: int) -> None:
    insert_ignore(conn, consumer_cursors, {"name": CURSOR, "position": 0, "updated_at": now}, key=["name"])
    moved = conn.execute(
        update(consumer_cursors)
        .where(consumer_cursors.c.name == CURSOR, consumer_cursors.c.position == old)
        .values(position=new, updated_at=now)
        .returning(consumer_cursors.c.name)
    ).first()
    if moved is None:
        raise PlanConflict(f"the transfer cursor moved from {old} while planning up to {new}")


@dataclass(frozen=True, slots=True)
class Plan:
    files: int
    cursor: int
    #: more of the log is waiting beyond this plan's batch
    more: bool


def plan(conn: Connection, *, now: int, region: str, batch: int = PLAN_BATCH) -> Plan:
    """Plan the files for the next batch of the log and move the cursor, all in ``conn``'s transaction."""
    start = cursor(conn)
    bound = _transfer_bound(conn)
    if bound <= start:
        return Plan(0, start, False)
    found = targets(conn)
    end, more, files = bound, False, 0
    if found:
        if bound - start > batch:  # seq numbers, not rows: finding the n-th row would read the range twice
            end, more = start + batch, True
        files = _insert_files(conn, found, start, end, now=now, region=region)
    _move_cursor(conn, start, end, now)
    return Plan(files, end, more)


@dataclass(slots=True)
class _Group:
    """What one file (or, when too large, several) of a tracker's service folder will hold."""

    target: Target
    service: str | None
    count: int = 0
    body_bytes: int = 0
    first: int = 2**63
    last: int = 0
    oldest: int = 2**63
    newest: int = 0

    def add(self, count: int, size: int, first: int, last: int, oldest: int, newest: int) -> None:
        self.count += count
        self.body_bytes += size
        self.first, self.last = min(self.first, first), max(self.last, last)
        self.oldest, self.newest = min(self.oldest, oldest), max(self.newest, newest)


def _groups(conn: Connection, found: list[Target], start: int, end: int) -> list[_Group]:
    """Per tracker and service folder, the range's traces summed up by SQL (no row comes to Python)."""
    system = {t.project_id: t for t in found if t.kind == "system"}
    data = {(t.project_id, t.name): t for t in found if t.kind == "data"}
    t = traces.c
    columns = (t.project_id, t.kind, t.tracker_name, t.service_type)
    stmt = (
        select(
            *columns,
            func.count(),
            func.sum(func.length(t.body)),
            func.min(t.seq),
            func.max(t.seq),
            func.min(t.time),
            func.max(t.time),
        )
        .where(t.seq > start, t.seq <= end)
        .group_by(*columns)
    )
    groups: dict[tuple[str, str | None], _Group] = {}
    for project, kind, tracker, service_type, *sums in conn.execute(stmt):
        target = system.get(project) if kind == "system" else data.get((project, tracker))
        if target is None:
            continue
        service = service_type if target.by_service else None
        key = (target.tracker_id, service)
        group = groups.get(key) or groups.setdefault(key, _Group(target, service))
        group.add(*(int(v) for v in sums))
    return list(groups.values())


def _split(conn: Connection, group: _Group, start: int, end: int) -> list[_Group]:
    """A group over the content limit, cut into files by its rows' sizes."""
    target, t = group.target, traces.c
    conds = [t.seq > start, t.seq <= end, t.project_id == target.project_id, t.kind == target.kind]
    if target.kind == "data":
        conds.append(t.tracker_name == target.name)
    if group.service is not None:
        conds.append(t.service_type == group.service)
    rows = conn.execute(select(t.seq, t.time, func.length(t.body)).where(*conds).order_by(t.seq)).all()
    cuts = [*encoding.split_points([r[2] for r in rows]), len(rows)]
    parts = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        part = _Group(target, group.service)
        for seq, time, size in rows[a:b]:
            part.add(1, size, seq, seq, time, time)
        parts.append(part)
    return parts


def _insert_files(
    conn: Connection, found: list[Target], start: int, end: int, *, now: int, region: str
) -> int:
    values: list[dict[str, Any]] = []
    for group in _groups(conn, found, start, end):
        size = group.body_bytes + 2 + 2 * (group.count - 1)
        parts = [group] if size <= encoding.MAX_CONTENT else _split(conn, group, start, end)
        values.extend(_file(part, now=now, region=region) for part in parts)
    if values:
        conn.execute(insert(trace_files), values)
    return len(values)


def _file(group: _Group, *, now: int, region: str) -> dict[str, Any]:
    target = group.target
    key = layout.trace_file_key(
        region=region,
        project_id=target.project_id,
        tracker=target.name,
        service=group.service,
        prefix=target.prefix,
        at_ms=now,
        random16=layout.file_random(target.tracker_id, group.service, group.first, group.last),
        compress=target.compress,
        encrypted=target.kms_id is not None,
    )
    return {
        "tracker_id": target.tracker_id,
        "project_id": target.project_id,
        "kind": target.kind,
        "tracker_name": target.name,
        "service": group.service,
        "bucket": target.bucket,
        "object_key": key,
        "compress": target.compress,
        "kms_id": target.kms_id,
        "first_seq": group.first,
        "last_seq": group.last,
        "trace_count": group.count,
        "oldest_time": group.oldest,
        "newest_time": group.newest,
        "stamp_ms": now,
        "status": PLANNED,
        "attempts": 0,
        "next_attempt_at": now,
    }


def retention_hold(conn: Connection) -> int | None:
    """The last seq retention may delete while any tracker has a bucket (None: no limit).

    Traces the planner has not reached, and traces of files planned but not written yet, stay: deleting
    them would leave a hole in the archive.
    """
    if not targets(conn):
        return None
    pending = conn.execute(
        select(func.min(trace_files.c.first_seq)).where(trace_files.c.status == PLANNED)
    ).scalar()
    hold = cursor(conn)
    return hold if pending is None else min(hold, int(pending) - 1)
