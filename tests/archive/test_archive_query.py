"""SQL over archived trace files: files written by the real transfer, read back through DuckDB.

Every login from one address over a year, date pruning by the files' stamps, gzip and json files, encrypted
files (the key needed, a clear error without it), and the sandbox the API runs the SQL in.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from archive.archive_world import DOMAIN, OTHER, PROJECT
from cts_helpers import trace_row
from opencts.archive import layout, planner, query
from opencts.archive.envelope import EnvelopeHeader, new_data_key, seal, unwrap_data_key
from opencts.archive.storage import LocalStore
from opencts.archive.transfer import Transfer
from opencts.clock import DAY_MS
from opencts.config import Settings
from opencts.kms.errors import KeyNotFound
from opencts.store import Database, trace_log
from opencts.trackers import repository
from opencts.trackers.model import CreateTrackerRequestBody, UpdateTrackerRequestBody

BASE_MS = 1_780_000_000_000
LATER_MS = BASE_MS + 200 * DAY_MS
REGION = "local-1"
LATE_MS = 8 * DAY_MS
ATTACKER = "203.0.113.7"


@pytest.fixture
def store(store: LocalStore) -> LocalStore:
    for bucket in ("mgmt", "data"):
        store.create_bucket(bucket)
    return store


def body(trace_id: str, time_ms: int, ip: str, name: str = "login", **extra: Any) -> bytes:
    doc = {
        "trace_id": trace_id,
        "trace_name": name,
        "trace_rating": "normal",
        "trace_type": "ConsoleAction",
        "event_type": "system",
        "time": time_ms,
        "record_time": time_ms,
        "user": {"id": "u1", "name": "alice", "domain": {"id": DOMAIN, "name": "acme"}},
        "service_type": "IAM",
        "resource_type": "user",
        "resource_name": "alice",
        "source_ip": ip,
        "code": "200",
        "request": '{"auth": "password"}',
        "project_id": PROJECT,
        "tracker_name": "system",
    }
    doc.update(extra)
    return orjson.dumps(doc)


def append(db: Database, project: str, items: list[tuple[str, int, str]], **columns: Any) -> None:
    """Stored rows whose bodies are realistic traces: (trace id, time, source ip)."""
    rows = [
        trace_row(
            tid,
            project_id=project,
            time=at,
            record_time=at,
            source_ip=ip,
            body=body(tid, at, ip, project_id=project, **columns),
            **(
                {"tracker_name": columns["tracker_name"], "kind": "data"} if "tracker_name" in columns else {}
            ),
        )
        for tid, at, ip in items
    ]
    db.write_sync(lambda c: trace_log.append(c, rows))


def obs(db: Database, project: str, **info: Any) -> None:
    update = UpdateTrackerRequestBody.model_validate(
        {"tracker_type": "system", "tracker_name": "system", "obs_info": info}
    )
    db.write_sync(lambda c: repository.update_tracker(c, project_id=project, body=update))


def data_tracker(db: Database, name: str, **info: Any) -> None:
    create = CreateTrackerRequestBody.model_validate(
        {
            "tracker_type": "data",
            "tracker_name": name,
            "data_bucket": {"data_bucket_name": "watched"},
            "obs_info": info,
        }
    )
    db.write_sync(lambda c: repository.create_tracker(c, project_id=PROJECT, body=create))


async def transfer_at(db: Database, store: LocalStore, tmp_path: Path, at_ms: int) -> None:
    settings = Settings(data_dir=tmp_path / "data", transfer_interval=1)
    await Transfer(db, store, settings, clock=lambda: at_ms).drain()


@pytest.fixture
async def archive(db: Database, store: LocalStore, tmp_path: Path) -> list[planner.Target]:
    """Two transfers 200 days apart; another project's files in the same bucket; a json data tracker."""
    obs(db, PROJECT, bucket_name="mgmt")
    obs(db, OTHER, bucket_name="mgmt")
    data_tracker(db, "dt", bucket_name="data", compress_type="json", is_sort_by_service=False)
    first = [(f"a{i}", BASE_MS - i * 1000, ATTACKER if i % 3 == 0 else "198.51.100.1") for i in range(30)]
    append(db, PROJECT, first)
    append(db, OTHER, [(f"o{i}", BASE_MS - i, ATTACKER) for i in range(7)])
    append(
        db,
        PROJECT,
        [(f"d{i}", BASE_MS - i, ATTACKER) for i in range(4)],
        tracker_name="dt",
        trace_type="ObsSDK",
    )
    await transfer_at(db, store, tmp_path, BASE_MS)
    append(db, PROJECT, [(f"b{i}", LATER_MS - i * 1000, ATTACKER) for i in range(5)])
    await transfer_at(db, store, tmp_path, LATER_MS)
    return db.read_sync(planner.targets)


def run(
    store: LocalStore,
    targets: list[planner.Target] | list[query.Source],
    sql: str,
    *,
    start: int = BASE_MS - 365 * DAY_MS,
    end: int = LATER_MS + DAY_MS,
    tracker: str | None = None,
    project: str | None = PROJECT,
    unwrap: query.Unwrap | None = None,
    limit: int = 1000,
) -> query.Answer:
    sources = [t for t in targets if isinstance(t, query.Source)] or query.pick_sources(
        [t for t in targets if isinstance(t, planner.Target)], project_id=project, tracker=tracker
    )
    return query.answer(
        store,
        sources,
        sql=sql,
        region=REGION,
        start_ms=start,
        end_ms=end,
        late_ms=LATE_MS,
        unwrap=unwrap,
        limit=limit,
        timeout=30,
    )


async def test_every_login_from_one_address_over_a_year(
    store: LocalStore, archive: list[planner.Target]
) -> None:
    sql = (
        "SELECT trace_id, time, time_ms, user_name, user.domain.name AS account, tracker_name, file_key"
        f" FROM traces WHERE trace_name = 'login' AND source_ip = '{ATTACKER}' ORDER BY time_ms"
    )
    answer = run(store, archive, sql, tracker="system")
    expected = sorted(
        [(BASE_MS - i * 1000, f"a{i}") for i in range(0, 30, 3)]
        + [(LATER_MS - i * 1000, f"b{i}") for i in range(5)]
    )
    assert [r[0] for r in answer.rows] == [tid for _, tid in expected]
    assert [r[2] for r in answer.rows] == [at for at, _ in expected]
    assert answer.columns[:4] == ["trace_id", "time", "time_ms", "user_name"]
    first = answer.rows[0]
    assert first[1].endswith("Z") and first[3] == "alice" and first[4] == "acme" and first[5] == "system"
    assert layout.parse_key(first[6]) is not None
    assert answer.files == 2 and not answer.truncated  # one service folder (IAM), two rounds


async def test_date_range_prunes_files_by_stamp(store: LocalStore, archive: list[planner.Target]) -> None:
    sources = query.pick_sources(archive, project_id=PROJECT, tracker="system")
    later = query.pick_files(
        store, sources, region=REGION, start_ms=LATER_MS - DAY_MS, end_ms=LATER_MS + DAY_MS, late_ms=LATE_MS
    )
    assert later and all(f.key.stamp_ms == LATER_MS for f in later)
    answer = run(
        store, archive, "SELECT count(*) FROM traces", start=LATER_MS - DAY_MS, end=LATER_MS + DAY_MS
    )
    assert answer.rows == [[5]] and answer.files == len(later)
    # a range between the two rounds reads no file at all, and still has the traces table
    empty = run(
        store,
        archive,
        "SELECT count(*), min(time) FROM traces",
        start=BASE_MS + 50 * DAY_MS,
        end=BASE_MS + 60 * DAY_MS,
    )
    assert empty.rows == [[0, None]] and empty.files == 0
    # the time range is exact, whatever the files hold
    edge = run(
        store, archive, "SELECT count(*) FROM traces", start=BASE_MS - 2999, end=BASE_MS + 1, tracker="system"
    )
    assert edge.rows == [[3]]


async def test_json_files_of_a_data_tracker_and_every_tracker(
    store: LocalStore, archive: list[planner.Target]
) -> None:
    answer = run(store, archive, "SELECT tracker_name, count(*) FROM traces GROUP BY 1 ORDER BY 1")
    assert answer.rows == [["dt", 4], ["system", 35]]
    data = run(store, archive, "SELECT DISTINCT trace_type, file_key FROM traces", tracker="dt")
    assert data.rows and all(r[0] == "ObsSDK" and r[1].endswith(".json") for r in data.rows)


async def test_another_projects_files_are_never_read(
    store: LocalStore, archive: list[planner.Target]
) -> None:
    mine = run(store, archive, "SELECT DISTINCT project_id FROM traces")
    assert mine.rows == [[PROJECT]]
    theirs = run(store, archive, "SELECT count(*) FROM traces", project=OTHER)
    assert theirs.rows == [[7]]
    everyone = run(store, archive, "SELECT count(*) FROM traces", project=None)  # the local CLI
    assert everyone.rows == [[46]]


async def test_row_cap_truncates(store: LocalStore, archive: list[planner.Target]) -> None:
    answer = run(store, archive, "SELECT trace_id FROM traces", limit=10)
    assert len(answer.rows) == 10 and answer.truncated


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", "file system operations are disabled"),
        ("SELECT content FROM read_text('/etc/passwd')", "disabled"),
        ("SELECT 1; SELECT 2", "exactly one SQL statement"),
        ("COPY traces TO '/tmp/x.csv'", "only a SELECT"),
        ("ATTACH '/tmp/x.db' AS x", "only a SELECT"),
        ("SET enable_external_access = true", "only a SELECT"),
        ("SELECT nope FROM traces", "SQL: Binder Error"),
        ("SELEC 1", "SQL: Parser Error"),
    ],
)
async def test_the_sandbox_refuses(
    store: LocalStore, archive: list[planner.Target], sql: str, words: str
) -> None:
    with pytest.raises(query.QueryError, match=words) as caught:
        run(store, archive, sql)
    assert caught.value.status == 400


def test_a_long_query_is_stopped(tmp_path: Path) -> None:
    with query.ArchiveQuery() as q:
        q.load(LocalStore(tmp_path), [], start_ms=0, end_ms=1, unwrap=None)
        q.sandbox()
        with pytest.raises(query.QueryTimeout, match="ran longer than 0.2 s") as caught:
            list(q.run("SELECT count(*) FROM range(100000000000) a", timeout=0.2).rows)
    assert (caught.value.status, caught.value.code) == (408, "CTS.0408")


def test_encrypted_files_need_their_key(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.create_bucket("enc")
    material = os.urandom(32)
    content = b"[" + b",\n".join(body(f"e{i}", BASE_MS + i, ATTACKER) for i in range(3)) + b"]"
    key = layout.trace_file_key(
        region=REGION,
        project_id=PROJECT,
        tracker="system",
        service="IAM",
        prefix=None,
        at_ms=BASE_MS,
        random16=layout.file_random("t", "IAM", 1, 3),
        encrypted=True,
    )
    store.put("enc", key, seal(gzip.compress(content, 6, mtime=0), new_data_key(material, "k1", 1)))
    target = query.Source("enc", PROJECT, "system")

    def unwrap(project: str, header: EnvelopeHeader) -> bytes:
        assert project == PROJECT
        return unwrap_data_key(material, header)

    def unknown(project: str, header: EnvelopeHeader) -> bytes:
        raise KeyNotFound(f"key {header.kms_id} does not exist")

    answer = run(store, [target], "SELECT trace_id FROM traces ORDER BY 1", unwrap=unwrap)
    assert answer.rows == [["e0"], ["e1"], ["e2"]]
    with pytest.raises(query.QueryError, match="is encrypted: reading it needs the key service"):
        run(store, [target], "SELECT 1 FROM traces")
    with pytest.raises(query.QueryError, match="cannot be decrypted: key k1 does not exist"):
        run(store, [target], "SELECT 1 FROM traces", unwrap=unknown)
    with pytest.raises(query.QueryError, match="cannot be decrypted: the data key does not unwrap"):
        run(store, [target], "SELECT 1 FROM traces", unwrap=lambda p, h: unwrap_data_key(os.urandom(32), h))
