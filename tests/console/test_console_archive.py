"""The console's Archive page in process: trace files written by the real transfer, listed per tracker and
day with their verification status, and SQL run through the API's query service (its sandbox and its
messages); the page of another project sees none of it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from console_helpers import browser, csrf_of, log_in_form, logged_in
from cts_helpers import MEMBER_PASSWORD, Api, create_member, in_process_api
from opencts.api.deps import Services
from opencts.archive.storage import LocalStore
from opencts.clock import HOUR_MS, now_ms
from opencts.config import Settings
from opencts.consumers import ConsumerRunner
from opencts.iam import projects
from opencts.iam.permissions import CTS_READ_ONLY
from opencts.ledger.consumer import LedgerConsumer
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


async def validated_archive(api: Api) -> LocalStore:
    """:func:`archived` with validation on, the ledger's leaves and the hour's digest written (its writer's
    clock two hours on)."""
    services: Services = api.app.state.services
    assert isinstance(services.storage, LocalStore) and services.digests is not None
    body = UpdateTrackerRequestBody.model_validate(
        {
            "tracker_type": "system",
            "tracker_name": "system",
            "obs_info": {"bucket_name": "audit-archive"},
            "is_support_validate": True,
        }
    )
    services.storage.create_bucket("audit-archive")
    await services.db.write(
        lambda conn: repository.update_tracker(conn, project_id=api.creds.project_id, body=body)
    )
    start = now_ms()
    await services.digests.run_once()  # the chain starts this hour
    await archived(api)
    await ConsumerRunner(services.db, LedgerConsumer(services.db)).drain()
    services.digests.clock = lambda: start + 2 * HOUR_MS
    await services.digests.run_once()
    return services.storage


async def test_verify_now_shows_the_result_and_names_a_changed_file(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", bind="127.0.0.1:8080", ingest_workers=0, archive_verify_interval=0
    )
    async with in_process_api(settings) as api:
        store = await validated_archive(api)
        services: Services = api.app.state.services
        assert services.verifications is not None
        async with logged_in(api.app, api.creds) as client:
            page = await client.get("/console/archive?tracker=system")
            assert "Not verified yet." in page.text and "Verify now" in page.text
            form = {"csrf_token": csrf_of(page.text), "tracker": "system"}
            no_csrf = await client.post("/console/archive/verify", data={"tracker": "system"})
            assert no_csrf.status_code == 403

            asked = await client.post("/console/archive/verify", data=form)
            assert asked.status_code == 303 and asked.headers["location"].endswith(
                "tracker=system#verification"
            )
            waiting = await client.get("/console/archive?tracker=system")
            assert "Queued" in waiting.text and 'http-equiv="refresh"' in waiting.text
            await services.verifications.drain()
            clean = await client.get("/console/archive?tracker=system")
            assert '<strong class="status enabled">Verified</strong>' in clean.text
            assert 'http-equiv="refresh"' not in clean.text
            assert re.search(r"\d digest\(s\), \d+ file\(s\), 20 trace\(s\)", clean.text), clean.text

            bucket = store.root / "audit-archive"
            victim = next(bucket.rglob("CloudTrace_*.json.gz"))
            victim.write_bytes(victim.read_bytes() + b"\0")
            assert (await client.post("/console/archive/verify", data=form)).status_code == 303
            await services.verifications.drain()
            failed = await client.get("/console/archive?tracker=system")
            assert '<strong class="status error">Failed</strong>' in failed.text
            key = victim.relative_to(bucket).as_posix()
            assert "<td>hash value doesn&#39;t match</td>" in failed.text and key in failed.text
            assert "Earlier verifications" in failed.text  # the clean run is listed below
            overview = await client.get("/console/archive")
            assert re.search(r'class="status error">failed</span></a> [^<]*, 1 failure\(s\)', overview.text)

            unknown = await client.post(
                "/console/archive/verify?tracker=nope", data={**form, "tracker": "nope"}
            )
            assert unknown.status_code == 404 and "tracker nope does not exist" in unknown.text

        await services.db.write(
            lambda conn: create_member(conn, services.box, api.creds.domain_id, "auditor", CTS_READ_ONLY)
        )
        async with browser(api.app) as client:
            resp = await log_in_form(
                client,
                method="password",
                account=api.creds.domain_name,
                user_name="auditor",
                password=MEMBER_PASSWORD,
            )
            assert resp.status_code == 303
            page = await client.get("/console/archive?tracker=system")
            assert "Failed" in page.text and "Verify now" not in page.text
            refused = await client.post(
                "/console/archive/verify", data={"csrf_token": csrf_of(page.text), "tracker": "system"}
            )
            assert refused.status_code == 403
