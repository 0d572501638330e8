"""``GET /v3/{p}/archive/status`` and ``/archive/files``: the lag before and after the real transfer, a
failing bucket with its detail, the ledger's checkpoint, the written files with their hashes, and another
project's trackers and files never showing."""

from __future__ import annotations

import hashlib
from functools import partial
from typing import Any

import orjson
from sqlalchemy import Connection

from cts_helpers import Api, trace_row
from opencts.api.deps import Services
from opencts.archive.storage import LocalStore
from opencts.clock import DAY_MS, iso_ms, now_ms
from opencts.iam.projects import create_project
from opencts.ledger import repository as ledger
from opencts.store import trace_log
from opencts.trackers import repository
from opencts.trackers.model import CreateTrackerRequestBody, UpdateTrackerRequestBody

BUCKET = "status-archive"


def to_bucket(conn: Connection, project_id: str) -> None:
    body = UpdateTrackerRequestBody.model_validate(
        {"tracker_type": "system", "tracker_name": "system", "obs_info": {"bucket_name": BUCKET}}
    )
    repository.update_tracker(conn, project_id=project_id, body=body)


def rows(project_id: str, tag: str, count: int, at: int, **columns: Any) -> list[trace_log.TraceRow]:
    return [
        trace_row(
            f"{tag}{i}",
            project_id=project_id,
            time=at,
            record_time=at,
            body=orjson.dumps({"trace_id": f"{tag}{i}", "time": at, "project_id": project_id}),
            **columns,
        )
        for i in range(count)
    ]


async def world(api: Api) -> tuple[Services, str, str]:
    """The admin's project with its system tracker and a data tracker whose bucket is missing, and another
    project in the same bucket."""
    services: Services = api.app.state.services
    assert isinstance(services.storage, LocalStore)
    services.storage.create_bucket(BUCKET)
    project, domain = api.project, api.creds.domain_id
    other = await services.db.write(lambda c: create_project(c, domain_id=domain, name="local-1_y"))
    data = CreateTrackerRequestBody.model_validate(
        {
            "tracker_type": "data",
            "tracker_name": "reads",
            "data_bucket": {"data_bucket_name": "watched"},
            "obs_info": {"bucket_name": "nowhere"},
        }
    )

    def setup(conn: Connection) -> None:
        repository.create_system_tracker(conn, project_id=other.id, domain_id=domain)
        to_bucket(conn, project)
        to_bucket(conn, other.id)
        repository.create_tracker(conn, project_id=project, body=data)

    await services.db.write(setup)
    return services, project, other.id


async def status_of(api: Api, project: str, **params: Any) -> dict[str, dict[str, Any]]:
    resp = await api.client.get(f"/v3/{project}/archive/status", params=params)
    assert resp.status_code == 200, resp.text
    return {t["tracker_name"]: t for t in resp.json()["trackers"]}


async def test_status_lag_files_and_isolation(api: Api) -> None:
    services, project, other = await world(api)
    at = now_ms() - 5_000
    await services.db.write(
        lambda c: trace_log.append(
            c,
            [
                *rows(project, "s", 30, at),
                *rows(project, "d", 7, at, kind="data", tracker_name="reads"),
                *rows(other, "o", 11, at),
            ],
        )
    )
    before = await status_of(api, project)
    assert set(before) == {"system", "reads"}  # the other project's tracker never shows
    system, reads = before["system"], before["reads"]
    assert system["lag_traces"] >= 30 and system["lag_seconds"] >= 4.0
    assert system["files_written"] == 0 and system["status"] == "ok" and system["bucket_name"] == BUCKET
    assert system["head_seq"] > system["transferred_seq"]
    assert reads["lag_traces"] == 7 and reads["tracker_type"] == "data"

    assert services.transfer is not None
    await services.transfer.drain()
    after = await status_of(api, project)
    system, reads = after["system"], after["reads"]
    assert system["lag_traces"] == 0 and system["lag_seconds"] == 0.0
    assert system["transferred_seq"] >= system["head_seq"]
    assert system["traces_written"] >= 30 and system["files_written"] >= 1 and system["bytes_written"] > 0
    assert system["transferred_time_ms"] is not None and system["last_success_ms"] is not None
    # the data tracker's bucket does not exist: it shows the failure and still owes its 7 traces
    assert reads["status"] == "error" and reads["detail"] == "noBucket" and reads["message"]
    assert reads["lag_traces"] == 7 and reads["pending_files"] == 1 and reads["files_written"] == 0
    assert reads["transferred_seq"] < reads["head_seq"]
    assert system["ledger"]["checkpoint_size"] is None and system["digest_head"] is None

    # the ledger's tree and a signed checkpoint show in the status
    await services.db.write(lambda c: ledger.append_log_rows(c, trace_log.read_after(c, 0, 10_000), now_ms()))
    point = (await api.client.get(f"/v3/{project}/ledger/checkpoint")).json()
    mine = (await status_of(api, project, tracker_name="system"))["system"]
    assert mine["ledger"]["checkpoint_size"] == point["tree_size"] == mine["ledger"]["tree_size"]
    assert mine["ledger"]["checkpoint_root"] == point["root_hash"]

    # the files: their hashes are the stored objects' hashes, and only the project's own
    resp = await api.client.get(f"/v3/{project}/archive/files", params={"tracker_name": "system"})
    assert resp.status_code == 200, resp.text
    listed = resp.json()["files"]
    assert sum(f["trace_count"] for f in listed) == system["traces_written"]
    assert resp.json()["next_marker"] is None
    store = services.storage
    assert isinstance(store, LocalStore)
    for f in listed:
        assert f["bucket_name"] == BUCKET and project in f["object_key"] and other not in f["object_key"]
        blob = store.get(BUCKET, f["object_key"])
        assert hashlib.sha256(blob).hexdigest() == f["sha256"] and len(blob) == f["size"]
    today = iso_ms(now_ms())[:10]
    on_day = await api.client.get(
        f"/v3/{project}/archive/files", params={"tracker_name": "system", "day": today}
    )
    assert on_day.json()["files"] == listed
    long_ago = iso_ms(now_ms() - 400 * DAY_MS)[:10]
    empty = await api.client.get(
        f"/v3/{project}/archive/files", params={"tracker_name": "system", "day": long_ago}
    )
    assert empty.json() == {"files": [], "next_marker": None}


async def test_files_pages_and_bad_input(api: Api) -> None:
    services, project, other = await world(api)
    at = now_ms()
    for n in range(3):  # three plans, three files
        await services.db.write(partial(trace_log.append, rows=rows(project, f"p{n}-", 4, at)))
        assert services.transfer is not None
        await services.transfer.drain()
    url = f"/v3/{project}/archive/files"
    first = (await api.client.get(url, params={"tracker_name": "system", "limit": 2})).json()
    assert len(first["files"]) == 2 and first["next_marker"] == first["files"][1]["object_key"]
    params = {"tracker_name": "system", "limit": 2, "marker": first["next_marker"]}
    rest = (await api.client.get(url, params=params)).json()
    keys = [f["object_key"] for f in first["files"] + rest["files"]]
    assert len(keys) == len(set(keys)) >= 3 and keys == sorted(keys)

    bad = await api.client.get(url, params={"tracker_name": "system", "day": "2026-13-01"})
    assert bad.status_code == 400 and bad.json()["error_code"] == "CTS.0001" and "YYYY-MM-DD" in bad.text
    assert bad.headers.get("X-Request-Id")
    missing = await api.client.get(url, params={"tracker_name": "nope"})
    assert missing.status_code == 404
    no_name = await api.client.get(url)
    assert no_name.status_code == 400
    unknown = await api.client.get(f"/v3/{project}/archive/status", params={"tracker_name": "nope"})
    assert unknown.status_code == 404
    # another project's status and files are not the caller's to read
    for path in (f"/v3/{other}/archive/status", f"/v3/{other}/archive/files?tracker_name=system"):
        resp = await api.client.get(path)
        assert resp.status_code == 403, resp.text
