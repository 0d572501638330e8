"""The console's trace pages in process: every filter, paging by markers, View Trace, Export CSV against
ListTraces, the dashboard, trackers, roles, and project isolation."""

from __future__ import annotations

import csv
import io
import re
import uuid

from sqlalchemy import Connection, insert

from console_helpers import browser, csrf_of, log_in_form, logged_in
from cts_helpers import MEMBER_PASSWORD, Api, TraceFactory, create_member
from opencts.iam import projects
from opencts.iam.secrets import new_id
from opencts.store.tables import domains

_VIEW = re.compile(r'href="/console/traces/([^"?]+)\?trace_type=')


def listed_ids(page: str) -> list[str]:
    return _VIEW.findall(page)


async def test_every_filter_narrows_the_list_as_list_traces_does(api: Api, make_trace: TraceFactory) -> None:
    traces = [
        make_trace(service_type="ECS", resource_type="ecs", user={"id": "u" * 32, "name": "bob"}),
        make_trace(
            service_type="OBS", resource_type="bucket", trace_rating="warning", trace_name="putObject"
        ),
        make_trace(service_type="ECS", resource_type="ecs", trace_rating="incident", resource_name="db-1"),
    ]
    assert (await api.put(traces)).status_code == 200
    ids = [t["trace_id"] for t in traces]
    cases = {
        "": set(ids),
        "service_type=OBS": {ids[1]},
        "resource_type=ecs": {ids[0], ids[2]},
        "trace_rating=incident": {ids[2]},
        "user=bob": {ids[0]},
        "search=trace_name&search_value=putObject": {ids[1]},
        "search=resource_name&search_value=db-1": {ids[2]},
        f"search=resource_id&search_value={traces[0]['resource_id']}": {ids[0]},
        f"search=trace_id&search_value={ids[1]}": {ids[1]},
        "trace_type=data": set(),
        "range=7d&service_type=ECS&trace_rating=incident": {ids[2]},
    }
    async with logged_in(api.app, api.creds) as client:
        for query, expected in cases.items():
            page = await client.get(f"/console/traces?{query}")
            assert page.status_code == 200, (query, page.text[:500])
            shown = set(listed_ids(page.text)) & set(ids)  # the admin's own login traces may be listed too
            assert shown == expected, query
        bad = await client.get("/console/traces?range=custom&start=yesterday")
        assert bad.status_code == 400
        assert "must be a date and time like" in bad.text
        bad = await client.get("/console/traces?trace_rating=bad")
        assert bad.status_code == 400 and "trace_rating must be one of" in bad.text


async def test_paging_by_markers_walks_every_trace_once_and_the_url_keeps_the_query(
    api: Api, make_trace: TraceFactory
) -> None:
    traces = [make_trace(service_type="VPC") for _ in range(25)]
    assert (await api.put(traces)).status_code == 200
    seen: list[str] = []
    async with logged_in(api.app, api.creds) as client:
        url: str | None = "/console/traces?service_type=VPC&limit=10"
        while url:
            page = await client.get(url)
            assert page.status_code == 200
            seen += listed_ids(page.text)
            found = re.search(r'href="(/console/traces\?[^"]+)" rel="next"', page.text)
            url = found[1].replace("&amp;", "&") if found else None
            if url:
                assert "service_type=VPC" in url and "next=" in url
    # newest first; traces of the same millisecond in reverse order of writing, as ListTraces lists them
    order = sorted(enumerate(traces), key=lambda it: (it[1]["time"], it[0]), reverse=True)
    expected = [t["trace_id"] for _, t in order]
    assert seen == expected


async def test_view_trace_shows_the_whole_json_highlighted(api: Api, make_trace: TraceFactory) -> None:
    trace = make_trace(request={"server": {"name": "<script>alert(1)</script>"}})
    await api.put([trace])
    async with logged_in(api.app, api.creds) as client:
        page = await client.get(f"/console/traces/{trace['trace_id']}?trace_type=system")
        assert page.status_code == 200
        assert 'class="highlight"' in page.text
        assert "<script>alert(1)</script>" not in page.text  # escaped by pygments
        assert "&lt;script&gt;" in page.text
        assert trace["trace_id"] in page.text
        missing = await client.get(f"/console/traces/{uuid.uuid4()}")
        assert missing.status_code == 404 and "search the Trace List" in missing.text
        css = await client.get("/console/static/highlight.css")
        assert css.status_code == 200 and ".highlight" in css.text


async def test_export_csv_holds_what_list_traces_lists(api: Api, make_trace: TraceFactory) -> None:
    traces = [make_trace(service_type="EVS", resource_type="volume") for _ in range(7)]
    await api.put(traces)
    async with logged_in(api.app, api.creds) as client:
        resp = await client.get("/console/traces/export.csv?range=1d&service_type=EVS")
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/csv")
        assert "attachment" in resp.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.content.decode("utf-8-sig"))))
    listed = (await api.list(service_type="EVS", limit=200)).json()["traces"]
    assert [r["Trace ID"] for r in rows] == [t["trace_id"] for t in listed]
    assert len(rows) == 7
    assert {r["Trace Source"] for r in rows} == {"EVS"}


async def test_dashboard_draws_the_charts_on_the_server(api: Api, make_trace: TraceFactory) -> None:
    await api.put([make_trace(service_type="RDS", trace_rating="incident") for _ in range(3)])
    async with logged_in(api.app, api.creds) as client:
        page = await client.get("/console/")
    assert page.status_code == 200
    assert page.text.count("<svg") == 6  # per hour, by rating, services; operations, users, source IPs
    assert "RDS 3" in page.text  # the services chart's description
    assert "incident 3" in page.text
    assert page.text.count('?trace_type=system">') == 3  # the recent incidents, each linked to its trace


async def test_trackers_are_listed_configured_disabled_and_enabled(api: Api) -> None:
    async with logged_in(api.app, api.creds) as client:
        listed = await client.get("/console/trackers")
        assert listed.status_code == 200 and "/console/trackers/system" in listed.text
        form = await client.get("/console/trackers/system")
        token = csrf_of(form.text)
        saved = await client.post(
            "/console/trackers/system",
            data={
                "csrf_token": token,
                "bucket_name": "audit-bucket",
                "file_prefix_name": "cts",
                "compress_type": "json",
                "is_support_validate": "on",
            },
        )
        assert saved.status_code == 303, saved.text
        bad = await client.post(
            "/console/trackers/system",
            data={
                "csrf_token": token,
                "bucket_name": "audit-bucket",
                "is_support_trace_files_encryption": "on",
            },
        )
        assert bad.status_code == 400 and "needs kms_id" in bad.text
        off = await client.post(
            "/console/trackers/system/status", data={"csrf_token": token, "status": "disabled"}
        )
        assert off.status_code == 303
    tracker = (await api.client.get(f"/v3/{api.project}/trackers")).json()["trackers"][0]
    assert tracker["obs_info"]["bucket_name"] == "audit-bucket"
    assert tracker["obs_info"]["file_prefix_name"] == "cts"
    assert tracker["obs_info"]["compress_type"] == "json"
    assert tracker["is_support_validate"] is True
    assert tracker["status"] == "disabled"


async def test_a_read_only_user_reads_traces_but_changes_no_tracker(api: Api) -> None:
    services = api.app.state.services
    await services.db.write(
        lambda conn: create_member(conn, services.box, api.creds.domain_id, "reader", "CTS ReadOnlyAccess")
    )
    async with browser(api.app) as client:
        resp = await log_in_form(
            client, account=api.creds.domain_name, user_name="reader", password=MEMBER_PASSWORD
        )
        assert resp.status_code == 303
        assert (await client.get("/console/traces")).status_code == 200
        page = await client.get("/console/trackers")
        assert page.status_code == 200
        refused = await client.post(
            "/console/trackers/system/status", data={"csrf_token": csrf_of(page.text), "status": "disabled"}
        )
        assert refused.status_code == 403 and "CTS FullAccess" in refused.text


async def test_a_session_sees_only_its_own_project(api: Api, make_trace: TraceFactory) -> None:
    mine = make_trace(service_type="KMS")
    await api.put([mine])
    services = api.app.state.services

    def other_account(conn: Connection) -> None:
        domain_id = new_id()
        conn.execute(insert(domains).values(id=domain_id, name="other", created_at=0))
        projects.create_project(conn, domain_id=domain_id, name="r-1")
        create_member(conn, services.box, domain_id, "outsider", "CTS FullAccess")

    await services.db.write(other_account)
    second = await services.db.write(
        lambda conn: projects.create_project(conn, domain_id=api.creds.domain_id, name="r-2")
    )
    async with browser(api.app) as client:
        resp = await log_in_form(client, account="other", user_name="outsider", password=MEMBER_PASSWORD)
        assert resp.status_code == 303
        page = await client.get("/console/traces?range=7d&service_type=KMS")
        assert mine["trace_id"] not in page.text
        assert (await client.get(f"/console/traces/{mine['trace_id']}")).status_code == 404
        csv_text = (await client.get("/console/traces/export.csv?range=7d")).text
        assert mine["trace_id"] not in csv_text
    async with browser(api.app) as client:  # the same admin, logged in to the account's other project
        resp = await log_in_form(
            client,
            method="aksk",
            access_key=api.creds.access_key,
            secret_key=api.creds.secret_key,
            project=second.name,
        )
        assert resp.status_code == 303
        page = await client.get("/console/traces?range=7d")
        assert "project r-2" in page.text and mine["trace_id"] not in page.text
