"""The console's Archive page in process: trace files written by the real transfer, listed per tracker and
day with their verification status, and SQL run through the API's query service (its sandbox and its
messages); the page of another project sees none of it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from console_helpers import browser, csrf_of, log_in_form, logged_in
from cts_helpers import Api
from opencts.api.deps import Services
from opencts.archive.storage import LocalStore
from opencts.clock import now_ms
from opencts.iam import projects
from opencts.trackers import repository
from opencts.trackers.model import UpdateTrackerRequestBody

ATTACKER = "203.0.113.7"


async def archived(api: Api) -> None:
    """Twenty logins of the admin's project, in the bucket ``audit-archive`` through the real transfer."""
    services: Services = api.app.state.services
    assert isinstance(services.storage, LocalStore)
    services.storage.create_bucket("audit-archive")
    body = UpdateTrackerRequestBody.model_validate(
        {"tracker_type": "system", "tracker_name": "system", "obs_info": {"bucket_name": "audit-archive"}}
    )

    def to_bucket(conn: Connection) -> None:
        repository.update_tracker(conn, project_id=api.creds.project_id, body=body)

    await services.db.write(to_bucket)
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
    resp = await api.client.post(f"/v3/{api.creds.project_id}/traces", json={"traces": traces})
    assert resp.json()["accepted"] == 20, resp.text
    assert services.transfer is not None
    await services.transfer.drain()


def today() -> str:
    return datetime.fromtimestamp(now_ms() / 1000, UTC).strftime("%Y-%m-%d")


async def test_files_per_day_and_a_query_over_them(api: Api) -> None:
    await archived(api)
    async with logged_in(api.app, api.creds) as client:
        page = await client.get("/console/archive")
        assert page.status_code == 200, page.text
        assert "audit-archive" in page.text
        day = re.search(r'href="/console/archive\?tracker=system&amp;day=(\d{4}-\d\d-\d\d)"', page.text)
        assert day is not None, page.text
        files = await client.get(f"/console/archive?tracker=system&day={day[1]}")
        assert files.status_code == 200
        assert re.search(r'<td class="id">[^<]*\.json\.gz</td><td>20</td>', files.text), files.text

        sql = "SELECT source_ip, count(*) AS logins FROM traces GROUP BY source_ip ORDER BY logins DESC"
        form = {
            "csrf_token": csrf_of(page.text),
            "sql": sql,
            "tracker": "system",
            "from": today(),
            "to": today(),
            "limit": "100",
        }
        answer = await client.post("/console/archive", data=form)
        assert answer.status_code == 200, answer.text
        assert "2 row(s)" in answer.text
        assert f"<td>{ATTACKER}</td><td>5</td>" in answer.text
        assert "<td>198.51.100.9</td><td>15</td>" in answer.text

        refused = await client.post("/console/archive", data={**form, "sql": "COPY traces TO '/tmp/x.csv'"})
        assert refused.status_code == 400 and "did not run" in refused.text
        assert "COPY traces" in refused.text  # the form keeps the SQL to correct
        bad_day = await client.post("/console/archive", data={**form, "from": "yesterday"})
        assert bad_day.status_code == 400 and "is not a date" in bad_day.text
        no_csrf = await client.post(
            "/console/archive", data={k: v for k, v in form.items() if k != "csrf_token"}
        )
        assert no_csrf.status_code == 403


async def test_another_project_sees_no_file_and_no_row(api: Api) -> None:
    await archived(api)
    services = api.app.state.services
    second = await services.db.write(
        lambda conn: projects.create_project(conn, domain_id=api.creds.domain_id, name="r-2")
    )
    async with browser(api.app) as client:
        resp = await log_in_form(
            client,
            method="aksk",
            access_key=api.creds.access_key,
            secret_key=api.creds.secret_key,
            project=second.name,
        )
        assert resp.status_code == 303
        page = await client.get("/console/archive")
        assert "audit-archive" not in page.text and "No tracker transfers to a bucket" in page.text
        form = {
            "csrf_token": csrf_of(page.text),
            "sql": "SELECT count(*) AS n FROM traces",
            "tracker": "",
            "from": today(),
            "to": today(),
            "limit": "10",
        }
        answer = await client.post("/console/archive", data=form)
        assert answer.status_code == 200, answer.text
        assert "from 0 file(s)" in answer.text and "<td>0</td>" in answer.text
