"""The dashboard's tops: operations, users and source IPs of the last 24 hours from the term index, equal to
what SQL counts; the recent alarms of notifications; and the page that draws them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert

from console_helpers import logged_in
from cts_helpers import Api, TraceFactory
from opencts.clock import DAY_MS, now_ms
from opencts.console import dashboard, dashboard_tops
from opencts.store import Database
from opencts.store.tables import notification_alarms


def cast(make_trace: TraceFactory) -> list[dict[str, Any]]:
    """alice 5 (ECS createServer), bob 3 (IAM login from 203.0.113.7), carol 1 (OBS putObject); and one
    of dave two days ago, outside the window."""
    traces = [make_trace(user={"name": "alice"}) for _ in range(5)]
    traces += [
        make_trace(
            user={"name": "bob"},
            service_type="IAM",
            resource_type="user",
            trace_name="login",
            source_ip="203.0.113.7",
        )
        for _ in range(3)
    ]
    traces.append(
        make_trace(user={"name": "carol"}, service_type="OBS", resource_type="bucket", trace_name="putObject")
    )
    traces.append(make_trace(user={"name": "dave"}, time=now_ms() - 2 * DAY_MS))
    return traces


async def test_the_index_counts_what_sql_counts(api: Api, make_trace: TraceFactory) -> None:
    assert (await api.put(cast(make_trace))).status_code == 200
    db: Database = api.app.state.services.db
    now = now_ms()
    project = api.creds.project_id
    indexed = await db.read(lambda c: dashboard_tops.tops(c, project, now=now, index=db.term_index))
    by_sql = await db.read(lambda c: dashboard_tops.tops(c, project, now=now, index=None))
    assert indexed.indexed and not by_sql.indexed
    assert indexed.operations == by_sql.operations
    assert indexed.users == by_sql.users
    assert ("ECS · createServer", 5) in indexed.operations
    assert ("IAM · login", 3) in indexed.operations
    assert ("OBS · putObject", 1) in indexed.operations
    assert dict(indexed.users)["alice"] == 5 and dict(indexed.users)["bob"] == 3
    assert "dave" not in dict(indexed.users)
    assert dict(indexed.source_ips)["203.0.113.7"] == 3
    assert dict(indexed.source_ips)["10.1.2.3"] == 6

    # the dashboard's charts too: hours by rating and the services, from the index as from SQL
    charts_indexed = await db.read(lambda c: dashboard.figures(c, project, now=now, index=db.term_index))
    charts_sql = await db.read(lambda c: dashboard.figures(c, project, now=now))
    assert charts_indexed == charts_sql
    assert charts_indexed.total == 9 and ("ECS", 5) in charts_indexed.by_service


async def test_the_dashboard_draws_the_tops_and_lists_the_alarms(api: Api, make_trace: TraceFactory) -> None:
    project = api.creds.project_id
    topic = await api.client.post(f"/v2/{project}/notifications/topics", json={"name": "cts_test"})
    assert topic.status_code in (200, 201), topic.text
    made = await api.client.post(
        f"/v3/{project}/notifications",
        json={
            "notification_name": "logins",
            "operation_type": "customized",
            "operations": [{"service_type": "IAM", "resource_type": "user", "trace_names": ["login"]}],
            "topic_id": topic.json()["topic_urn"],
        },
    )
    assert made.status_code in (200, 201), made.text
    traces = cast(make_trace)
    assert (await api.put(traces)).status_code == 200
    services = api.app.state.services
    notification_id = made.json()["notification_id"]
    # what the notifier records for each trace it alarmed on (its consumers do not run in process)
    rows = [
        {
            "notification_id": notification_id,
            "trace_id": t["trace_id"],
            "project_id": project,
            "outcome": "published",
            "created_at": now_ms(),
        }
        for t in traces[5:8]
    ]
    await services.db.write(lambda c: c.execute(insert(notification_alarms), rows))
    async with logged_in(api.app, api.creds) as client:
        page = await client.get("/console/")
    assert page.status_code == 200
    text = page.text
    assert '<title id="Top-operations-t">Top operations</title>' in text
    # bob's three logins and the admin's own, through the login form
    assert "ECS · createServer 5; IAM · login 4" in text
    assert "alice 5;" in text and "bob 3" in text
    assert "203.0.113.7 3" in text
    assert text.count("<td>logins</td>") == 3
    for trace in traces[5:8]:
        assert trace["trace_id"] in text
