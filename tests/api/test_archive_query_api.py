"""``POST /v3/{project_id}/archive/query`` and ``opencts archive query``: traces ingested through the API,
transferred by the real transfer, queried back; the sandbox and project isolation over HTTP."""

from __future__ import annotations

import json
from typing import Any

import httpx
import orjson
from sqlalchemy import Connection
from typer.testing import CliRunner

from cts_helpers import Api, trace_row
from opencts.api.deps import Services
from opencts.archive.storage import LocalStore
from opencts.cli.main import app as cli
from opencts.clock import now_ms
from opencts.iam.projects import create_project
from opencts.store import trace_log
from opencts.trackers import repository
from opencts.trackers.model import UpdateTrackerRequestBody

ATTACKER = "203.0.113.7"


def to_bucket(conn: Connection, project_id: str) -> None:
    body = UpdateTrackerRequestBody.model_validate(
        {"tracker_type": "system", "tracker_name": "system", "obs_info": {"bucket_name": "audit-archive"}}
    )
    repository.update_tracker(conn, project_id=project_id, body=body)


async def archived(api: Api) -> str:
    """Logins of the admin's project in the archive, beside another project's in the same bucket."""
    services: Services = api.app.state.services
    assert isinstance(services.storage, LocalStore)
    services.storage.create_bucket("audit-archive")
    project = api.creds.project_id
    other = await services.db.write(
        lambda c: create_project(c, domain_id=api.creds.domain_id, name="local-1_x")
    )
    domain = api.creds.domain_id

    def setup(conn: Connection) -> None:
        repository.create_system_tracker(conn, project_id=other.id, domain_id=domain)
        to_bucket(conn, project)
        to_bucket(conn, other.id)

    await services.db.write(setup)
    now = now_ms()
    traces: list[dict[str, Any]] = [
        {
            "trace_name": "login",
            "trace_type": "ConsoleAction",
            "service_type": "IAM",
            "resource_type": "user",
            "time": now - i * 60_000,
            "user": {"name": "alice" if i % 2 else "bob"},
            "source_ip": ATTACKER if i % 4 == 0 else "198.51.100.9",
        }
        for i in range(20)
    ]
    resp = await api.client.post(f"/v3/{project}/traces", json={"traces": traces})
    assert resp.json()["accepted"] == 20, resp.text
    rows = [
        trace_row(
            f"x{i}",
            project_id=other.id,
            time=now,
            record_time=now,
            source_ip=ATTACKER,
            body=orjson.dumps(
                {"trace_id": f"x{i}", "time": now, "project_id": other.id, "source_ip": ATTACKER}
            ),
        )
        for i in range(3)
    ]
    await services.db.write(lambda c: trace_log.append(c, rows))
    assert services.transfer is not None
    await services.transfer.drain()
    return project


def check_error(resp: httpx.Response, words: str) -> None:
    assert resp.status_code == 400, resp.text
    doc = resp.json()
    assert doc["error_code"] == "CTS.0001" and words in doc["error_msg"], doc


async def test_query_the_archive_over_http_and_from_the_shell(api: Api) -> None:
    project = await archived(api)
    url = f"/v3/{project}/archive/query"
    sql = (
        "SELECT user_name, count(*) AS n FROM traces"
        f" WHERE trace_name = 'login' AND source_ip = '{ATTACKER}' GROUP BY 1 ORDER BY 1"
    )
    resp = await api.client.post(url, json={"sql": sql, "tracker_name": "system"})
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc["columns"] == ["user_name", "n"] and doc["rows"] == [["bob", 5]] and doc["truncated"] is False
    assert doc["files"] >= 1

    # the other project's traces share the bucket and never show
    everyone = await api.client.post(url, json={"sql": "SELECT DISTINCT project_id FROM traces"})
    assert everyone.json()["rows"] == [[project]]
    capped = await api.client.post(url, json={"sql": "SELECT trace_id, time FROM traces", "limit": 3})
    assert len(capped.json()["rows"]) == 3 and capped.json()["truncated"] is True
    assert capped.json()["rows"][0][1].endswith("Z")

    check_error(await api.client.post(url, json={"sql": "SELECT * FROM read_csv('/etc/passwd')"}), "disabled")
    check_error(await api.client.post(url, json={"sql": "SELECT 1; SELECT 2"}), "exactly one SQL statement")
    check_error(await api.client.post(url, json={"sql": "DROP TABLE traces"}), "only a SELECT")
    check_error(await api.client.post(url, json={"sql": "SELECT bogus FROM traces"}), "Binder Error")
    check_error(await api.client.post(url, json={"sql": "SELECT 1", "from": 10, "to": 5}), "before")
    missing = await api.client.post(url, json={"sql": "SELECT 1", "tracker_name": "nope"})
    assert missing.status_code == 404

    # the local CLI reads the same files with no server in between: every project's, unless narrowed
    data_dir = str(api.settings.data_dir)
    result = CliRunner().invoke(
        cli,
        [
            "archive",
            "query",
            "SELECT project_id, count(*) n FROM traces GROUP BY 1 ORDER BY 2",
            "--format",
            "json",
            "--data-dir",
            data_dir,
        ],
    )
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["n"] for line in lines] == [3, 20] and lines[1]["project_id"] == project
    result = CliRunner().invoke(
        cli,
        [
            "archive",
            "query",
            "SELECT trace_name, source_ip FROM traces",
            "--format",
            "csv",
            "--limit",
            "2",
            "--data-dir",
            data_dir,
        ],
    )
    assert result.exit_code == 0 and result.stdout.splitlines()[0] == "trace_name,source_ip"
    assert len(result.stdout.splitlines()) == 3
    result = CliRunner().invoke(cli, ["archive", "query", "SELEC 1", "--data-dir", data_dir])
    assert result.exit_code == 1 and result.stderr.startswith("error: SQL: Parser Error")


async def test_a_query_past_its_deadline_is_a_408(api: Api) -> None:
    project = await archived(api)
    api.settings.archive_query_timeout = 0.3  # OPENCTS_ARCHIVE_QUERY_TIMEOUT, read at each request
    slow = "SELECT count(*) FROM traces, range(100000000000) AS r"
    resp = await api.client.post(f"/v3/{project}/archive/query", json={"sql": slow})
    assert resp.status_code == 408, resp.text
    doc = resp.json()
    assert doc["error_code"] == "CTS.0408" and "0.3 s" in doc["error_msg"], doc
    assert resp.headers["X-Request-Id"]
