"""SQL over archived trace files, through DuckDB: pick the files, open them, load a ``traces`` table, run.

Steps, the same for the CLI (``opencts archive query``, local and trusted) and the API (sandboxed):

1. **Pick** (:func:`pick_files`): list the trackers' buckets through the storage interface and keep the
   trace files whose key (``layout.parse_key``) names the project and tracker asked for and whose stamp
   can hold a trace of the time range. A file's stamp is the moment it was planned, after every trace in
   it was recorded; a trace's ``time`` is at most 15 minutes after its recording (ingest refuses later
   ones) and at most the retention before it (older ones are refused, and a file waits at most a lease
   or an outage before it is planned). So a file stamped before ``from - 15 min`` cannot hold a trace of
   the range, nor one stamped after ``to + late_ms``. The folder date only repeats the stamp.
2. **Open** (:func:`fetch`): read each object through the store (threads: S3 answers in parallel),
   decrypt it through the key service when it ends in ``.enc`` (the project in its name is the project
   whose key must unwrap it), gunzip it (zlib, off the GIL, in the same threads).
3. **Load** (:class:`ArchiveQuery`): the files go to a private temporary folder and a ``traces`` view
   reads them with ``read_json(format='array')`` and an explicit column schema (no sampling, and a field
   missing from every file is still a column), restricted to the time range. A view and not a table:
   DuckDB converts only the fields the query names.
4. **Run**: the caller's SQL, one statement. Sandboxed, after loading: external access off (no files but
   that temporary folder, no network), configuration locked, only a single SELECT (``WITH`` included), a
   row cap and a deadline (``OPENCTS_ARCHIVE_QUERY_TIMEOUT``, counted from the request, loading included):
   past it the query is interrupted and the answer is :class:`QueryTimeout` (408 ``CTS.0408``).

Writing NDJSON from Python or handing DuckDB Arrow tables both parse every trace in Python first;
handing it the stored array bytes as they are costs nothing beyond the read, the decryption and the
gunzip. Gunzipping in Python beat letting DuckDB gunzip (``read_json``'s per-file cost on gzip over many
small files): ``benchmarks/archive_query.py`` measures both against reading and gunzipping alone.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
import threading
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from pathlib import Path
from time import monotonic
from types import TracebackType
from typing import Any

import duckdb

from opencts.archive import layout
from opencts.archive.envelope import EnvelopeError, EnvelopeHeader, open_envelope
from opencts.archive.planner import Target
from opencts.archive.storage import NoSuchObject, ObjectStore, StorageError
from opencts.clock import MINUTE_MS
from opencts.errors import BadRequest, OpenCTSError, RequestTimeout

#: how far after its recording a trace's ``time`` may be (ingest's future limit)
FUTURE_MS = 15 * MINUTE_MS

#: the CTS trace fields as stored (``traces.model.normalise``), with their DuckDB types
TRACE_COLUMNS: dict[str, str] = {
    "trace_id": "VARCHAR",
    "trace_name": "VARCHAR",
    "trace_rating": "VARCHAR",
    "trace_type": "VARCHAR",
    "event_type": "VARCHAR",
    "time": "BIGINT",
    "record_time": "BIGINT",
    "user": (
        "STRUCT(id VARCHAR, name VARCHAR, user_name VARCHAR, domain STRUCT(id VARCHAR, name VARCHAR),"
        " account_id VARCHAR, access_key_id VARCHAR, principal_urn VARCHAR, principal_id VARCHAR,"
        " principal_is_root_user VARCHAR, type VARCHAR, invoked_by VARCHAR[],"
        " session_context STRUCT(attributes STRUCT(created_at VARCHAR, mfa_authenticated VARCHAR)))"
    ),
    "service_type": "VARCHAR",
    "resource_type": "VARCHAR",
    "resource_name": "VARCHAR",
    "resource_id": "VARCHAR",
    "resource_account_id": "VARCHAR",
    "source_ip": "VARCHAR",
    "code": "VARCHAR",
    "request": "VARCHAR",
    "response": "VARCHAR",
    "message": "VARCHAR",
    "api_version": "VARCHAR",
    "request_id": "VARCHAR",
    "location_info": "VARCHAR",
    "endpoint": "VARCHAR",
    "resource_url": "VARCHAR",
    "enterprise_project_id": "VARCHAR",
    "read_only": "BOOLEAN",
    "operation_id": "VARCHAR",
    "project_id": "VARCHAR",
    "tracker_name": "VARCHAR",
    "submitter": "JSON",
}

#: the ``traces`` table: stored fields, ``time`` as a TIMESTAMP (UTC) beside ``time_ms``, and where it was
_SELECT = """
SELECT r.trace_id, r.trace_name, r.trace_rating, r.trace_type, r.event_type,
       epoch_ms(r.time) AS time, r.time AS time_ms, epoch_ms(r.record_time) AS record_time,
       r.user, coalesce(r.user.name, r.user.user_name) AS user_name,
       r.service_type, r.resource_type, r.resource_name, r.resource_id, r.resource_account_id,
       r.source_ip, r.code, r.request, r.response, r.message, r.api_version, r.request_id,
       r.location_info, r.endpoint, r.resource_url, r.enterprise_project_id, r.read_only, r.operation_id,
       r.project_id, coalesce(r.tracker_name, f.tracker) AS tracker_name, r.submitter,
       f.bucket AS file_bucket, f.object_key AS file_key
FROM read_json($paths, format = 'array', columns = $columns, filename = true) AS r
JOIN _files AS f ON f.path = r.filename
WHERE r.time >= $start AND r.time < $end
"""

Unwrap = Callable[[str, EnvelopeHeader], bytes]
Progress = Callable[[int], None]


class QueryError(BadRequest):
    """The query cannot run: bad SQL (DuckDB's message), a file that does not open, a refused statement."""


class QueryTimeout(RequestTimeout):
    """The query (with its loading) ran past its deadline and was stopped."""


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    bucket: str
    key: layout.ArchiveKey
    size: int


@dataclass(frozen=True, slots=True)
class Result:
    """Column names and the rows as DuckDB returns them, streamed; ``truncated`` is known at the end."""

    columns: list[str]
    rows: Generator[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Source:
    """Trace files a query reads in one bucket: one project's and tracker's, or (None) any."""

    bucket: str
    project_id: str | None = None
    tracker: str | None = None

    def holds(self, key: layout.ArchiveKey) -> bool:
        return (self.project_id in (None, key.project_id)) and (self.tracker in (None, key.tracker))


def pick_sources(found: Sequence[Target], *, project_id: str | None, tracker: str | None) -> list[Source]:
    """The trackers (with a bucket) a query reads: one project's, or every project's for a local CLI."""
    return [
        Source(t.bucket, t.project_id, t.name)
        for t in found
        if (project_id is None or t.project_id == project_id) and (tracker is None or t.name == tracker)
    ]


def pick_files(
    store: ObjectStore,
    sources: Sequence[Source],
    *,
    region: str,
    start_ms: int,
    end_ms: int,
    late_ms: int,
) -> list[ArchiveFile]:
    """Trace files of ``sources`` that can hold a trace whose time is in ``[start_ms, end_ms)``.

    One listing per bucket (the local store walks a whole bucket for any prefix); each key is parsed, and
    only a trace file of a source's project and tracker is kept, so a stranger in the bucket, a digest or
    another project's file is never read.
    """
    wanted: dict[str, list[Source]] = {}
    for source in sources:
        wanted.setdefault(source.bucket, []).append(source)
    low, high = start_ms - FUTURE_MS, end_ms + late_ms
    picked: list[ArchiveFile] = []
    for bucket, owners in sorted(wanted.items()):
        for info in store.list(bucket, f"{layout.ROOT}/{region}/"):
            key = layout.parse_key(info.key)
            if key is None or key.kind != "trace" or not low <= key.stamp_ms < high:
                continue
            if any(owner.holds(key) for owner in owners):
                picked.append(ArchiveFile(bucket, key, info.size))
    return picked


def fetch(store: ObjectStore, file: ArchiveFile, unwrap: Unwrap | None) -> bytes:
    """The file's bytes as DuckDB reads them: decrypted, still gzip when it was."""
    where = f"{file.bucket}/{file.key.key}"
    try:
        blob = store.get(file.bucket, file.key.key)
    except NoSuchObject:
        raise QueryError(f"{where}: not found (deleted while the query read the bucket?)") from None
    except StorageError as exc:
        raise QueryError(f"{where}: {exc}") from None
    if not file.key.encrypted:
        return blob
    if unwrap is None:
        raise QueryError(
            f"{where} is encrypted: reading it needs the key service (database and KMS master key)"
        )
    project_id = file.key.project_id
    try:
        return open_envelope(blob, lambda header: unwrap(project_id, header))
    except EnvelopeError as exc:
        raise QueryError(f"{where} cannot be decrypted: {exc}") from None
    except OpenCTSError as exc:  # KeyNotFound: not this project's key, or a key the service lacks
        raise QueryError(f"{where} cannot be decrypted: {exc.message}") from None


class ArchiveQuery:
    """One DuckDB database in memory holding the ``traces`` of some files; closed with its temp folder."""

    def __init__(self, *, threads: int = 2, memory_limit: str = "1GB") -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="opencts-query-"))
        self.db = duckdb.connect(
            config={
                "threads": threads,
                "memory_limit": memory_limit,
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "temp_directory": str(self._dir / "spill"),
            }
        )
        self.files = 0
        self.sandboxed = False

    def load(
        self,
        store: ObjectStore,
        files: Sequence[ArchiveFile],
        *,
        start_ms: int,
        end_ms: int,
        unwrap: Unwrap | None,
        progress: Progress | None = None,
        workers: int = 8,
        inflate: bool = True,
    ) -> None:
        """Read, decrypt and gunzip ``files`` into the temp folder, under the ``traces`` view (empty if none).

        ``inflate`` gunzips in Python before DuckDB reads: over 11,680 small files that was 2.3 times
        faster than handing DuckDB the gzip bytes (``benchmarks/archive_query.py``).
        """
        rows: list[tuple[str, str, str, str]] = []

        def one(item: tuple[int, ArchiveFile]) -> tuple[str, str, str, str]:
            index, file = item
            data = fetch(store, file, unwrap)
            gzipped = file.key.compress == "gzip"
            if gzipped and inflate:
                data, gzipped = gzip.decompress(data), False
            path = self._dir / f"{index:08d}{'.json.gz' if gzipped else '.json'}"
            path.write_bytes(data)
            if progress is not None:
                progress(file.size)
            return str(path), file.bucket, file.key.key, file.key.tracker

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            rows = list(pool.map(one, enumerate(files)))
        self.db.execute(
            "CREATE TABLE _files (path VARCHAR, bucket VARCHAR, object_key VARCHAR, tracker VARCHAR)"
        )
        if rows:
            self.db.executemany("INSERT INTO _files VALUES (?, ?, ?, ?)", rows)
            select = (
                _SELECT.replace("$columns", _struct_literal(TRACE_COLUMNS))
                .replace("$paths", "[" + ", ".join(_text(r[0]) for r in rows) + "]")
                .replace("$start", str(int(start_ms)))
                .replace("$end", str(int(end_ms)))
            )
            # a view, not a table: DuckDB converts only the fields a query names (four times faster for
            # a narrow query) and nothing is held in memory; the files stay until close()
            self.db.execute(f"CREATE VIEW traces AS {select}")
        else:  # the same columns, no rows: a query over an empty range runs and answers nothing
            self.db.execute(f"CREATE VIEW traces AS {_empty_select()}")
        self.files = len(rows)

    def check(self, sql: str) -> None:
        """Refuse anything but one SELECT before a file is read (QueryError with DuckDB's words)."""
        _one_select(self.db, sql)

    def sandbox(self) -> None:
        """No file, network or setting from here on: what the API's callers run sees ``traces`` only."""
        # the view reads the loaded files at query time: their folder alone stays readable
        self.db.execute(f"SET allowed_directories = [{_text(str(self._dir) + '/')}]")
        self.db.execute("SET enable_external_access = false")
        self.db.execute("SET lock_configuration = true")
        self.sandboxed = True

    def run(self, sql: str, *, timeout: float | None = None, batch: int = 1000) -> Result:
        """Run one SELECT; rows stream as the caller iterates. DuckDB's own words on bad SQL (QueryError)."""
        statement = _one_select(self.db, sql)
        timer = threading.Timer(timeout, self.db.interrupt) if timeout else None
        if timer is not None:
            timer.start()
        try:
            cursor = self.db.execute(statement)
        except duckdb.Error as exc:
            if timer is not None:
                timer.cancel()
            raise _error(exc, timeout) from None
        columns = [d[0] for d in cursor.description or []]
        return Result(columns, _stream(cursor, batch, timer, timeout))

    def close(self) -> None:
        self.db.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> ArchiveQuery:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _struct_literal(columns: dict[str, str]) -> str:
    """``{'name': 'TYPE', ...}``: read_json's ``columns`` takes a literal, not a parameter."""
    return "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items()) + "}"


def _empty_select() -> str:
    casts = ", ".join(f"CAST(NULL AS {kind}) AS {_quote(name)}" for name, kind in TRACE_COLUMNS.items())
    body = _SELECT.split("FROM", 1)[0]
    return (
        f"{body} FROM (SELECT {casts}) AS r, "
        "(SELECT NULL::TEXT AS tracker, NULL::TEXT AS bucket, NULL::TEXT AS object_key) AS f WHERE false"
    )


def _text(value: str) -> str:
    """A SQL string literal (``CREATE VIEW`` takes no parameters)."""
    return "'" + value.replace("'", "''") + "'"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _one_select(db: duckdb.DuckDBPyConnection, sql: str) -> str:
    try:
        statements = db.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(_message(exc, None)) from None
    if len(statements) != 1:
        raise QueryError(f"give exactly one SQL statement, not {len(statements)}")
    statement = statements[0]
    if statement.type != duckdb.StatementType.SELECT:
        raise QueryError(f"only a SELECT (or WITH … SELECT) runs here, not {statement.type.name}")
    return str(statement.query).strip().rstrip(";")


def _stream(
    cursor: duckdb.DuckDBPyConnection, batch: int, timer: threading.Timer | None, timeout: float | None
) -> Generator[tuple[Any, ...]]:
    try:
        while True:
            try:
                rows = cursor.fetchmany(batch)
            except duckdb.Error as exc:
                raise _error(exc, timeout) from None
            if not rows:
                return
            yield from rows
    finally:
        if timer is not None:
            timer.cancel()


def _error(exc: duckdb.Error, timeout: float | None) -> OpenCTSError:
    """A stop by the deadline's timer is a timeout (408); anything else, bad SQL (400)."""
    if isinstance(exc, duckdb.InterruptException):
        return QueryTimeout(_message(exc, timeout))
    return QueryError(_message(exc, timeout))


def _message(exc: duckdb.Error, timeout: float | None) -> str:
    if isinstance(exc, duckdb.InterruptException):
        return (
            f"the query ran longer than {timeout:g} s and was stopped" if timeout else "the query was stopped"
        )
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"SQL: {text or type(exc).__name__}"


@dataclass(frozen=True, slots=True)
class Answer:
    """What the API returns: at most ``limit`` rows as JSON values, and whether more were left out."""

    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    files: int


def answer(
    store: ObjectStore,
    sources: Sequence[Source],
    *,
    sql: str,
    region: str,
    start_ms: int,
    end_ms: int,
    late_ms: int,
    unwrap: Unwrap | None,
    limit: int,
    timeout: float,
) -> Answer:
    """The sandboxed run: pick, load, lock DuckDB down, run ``sql`` with a row cap and a deadline.

    The statement is checked before any file is read, so a refused query costs nothing. ``timeout``
    counts from here: what loading the files took is taken off what the SQL may run, and a load that
    used it all up is already a :class:`QueryTimeout`.
    """
    deadline = monotonic() + timeout
    with ArchiveQuery() as query:
        query.check(sql)
        picked = pick_files(store, sources, region=region, start_ms=start_ms, end_ms=end_ms, late_ms=late_ms)
        query.load(store, picked, start_ms=start_ms, end_ms=end_ms, unwrap=unwrap)
        left = deadline - monotonic()
        if left <= 0:
            raise QueryTimeout(
                f"loading {len(picked)} files took longer than {timeout:g} s; narrow the range"
            )
        query.sandbox()
        try:
            result = query.run(sql, timeout=left)
            rows = [[jsonable(v) for v in row] for row in islice(result.rows, limit + 1)]
        except QueryTimeout:
            raise QueryTimeout(
                f"the query ran longer than {timeout:g} s (loading its {len(picked)} files included)"
                " and was stopped; narrow the range or the query"
            ) from None
        result.rows.close()
    return Answer(result.columns, rows[:limit], len(rows) > limit, len(picked))


def jsonable(value: Any) -> Any:
    """A DuckDB value as JSON: timestamps in ISO 8601 (UTC), decimals and UUIDs as text, structs objects."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat().replace("+00:00", "Z")
    if isinstance(value, date | time | timedelta):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return str(value)  # Decimal, UUID, intervals
