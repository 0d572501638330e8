"""Key Event Notifications and Topics in the console, in process: create, modify, enable, disable and
delete a notification through its form (judged by the API's model, read back through ListNotifications),
the filter builder, errors that say what to do, topics and subscriptions, CSRF, and project isolation."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Connection, insert

from console_helpers import browser, csrf_of, log_in_form, logged_in
from cts_helpers import MEMBER_PASSWORD, Api, create_member, in_process_api
from opencts.config import Settings
from opencts.iam import projects
from opencts.iam.secrets import new_id
from opencts.store.tables import domains
from opencts.testing.peers import SmtpSink


def email_settings(tmp_path: Path, smtp: SmtpSink, database_url: str | None = None) -> Settings:
    """Email configured (an aiosmtpd sink), so email subscriptions can be added."""
    return Settings(
        data_dir=tmp_path / "data",
        bind="127.0.0.1:8080",
        ingest_workers=0,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_security="none",
        database_url=database_url,
    )


@pytest.fixture
async def api(tmp_path: Path, smtp: SmtpSink) -> AsyncIterator[Api]:
    async with in_process_api(email_settings(tmp_path, smtp)) as found:
        yield found


@pytest.fixture
async def pg_api(tmp_path: Path, smtp: SmtpSink, postgres_url: str) -> AsyncIterator[Api]:
    """The same on PostgreSQL: the flows whose SQL differs run again there (tests at the end)."""
    async with in_process_api(email_settings(tmp_path, smtp, postgres_url)) as found:
        yield found


def op(service: str, resource: str, name: str) -> str:
    return orjson.dumps([service, resource, name]).decode()


async def make_topic(api: Api, name: str = "security") -> str:
    resp = await api.client.post(
        f"/v2/{api.project}/notifications/topics", json={"name": name, "display_name": name}
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["topic_urn"])


async def listed(api: Api) -> list[dict[str, Any]]:
    resp = await api.client.get(f"/v3/{api.project}/notifications/smn")
    assert resp.status_code == 200, resp.text
    found: list[dict[str, Any]] = resp.json()["notifications"]
    return found


async def post_form(client: httpx.AsyncClient, page_url: str, action: str, fields: Any) -> httpx.Response:
    """Open ``page_url`` for its CSRF token, then post ``fields`` (pairs, so fields may repeat)."""
    page = await client.get(page_url)
    assert page.status_code == 200, page.text
    pairs = [("csrf_token", csrf_of(page.text)), *(fields.items() if isinstance(fields, dict) else fields)]
    return await client.post(
        action,
        content=urllib.parse.urlencode(pairs),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )


async def test_create_modify_disable_enable_and_delete_through_the_form(api: Api) -> None:
    topic = await make_topic(api)
    async with logged_in(api.app, api.creds) as client:
        form = [
            ("notification_name", "console_logins"),
            ("operation_type", "customized"),
            ("op", op("IAM", "user", "login")),
            ("op", op("IAM", "user", "logout")),
            ("ops_text", "CTS tracker deleteTracker\n"),
            ("group_1", "admins"),
            ("users_1", "alice, bob"),
            ("filter_on", "on"),
            ("condition", "OR"),
            ("rule_field_1", "code"),
            ("rule_op_1", "="),
            ("rule_value_1", "200"),
            ("rule_field_2", "trace_rating"),
            ("rule_op_2", "!="),
            ("rule_value_2", "normal"),
            ("topic_id", topic),
        ]
        new = "/console/notifications/new"
        resp = await post_form(client, new, new, form)
        assert resp.status_code == 303, resp.text
        assert resp.headers["location"] == "/console/notifications?done=created%3Aconsole_logins"
        [made] = await listed(api)
        assert made["status"] == "enabled" and made["topic_id"] == topic
        assert made["operations"] == [
            {"service_type": "IAM", "resource_type": "user", "trace_names": ["login", "logout"]},
            {"service_type": "CTS", "resource_type": "tracker", "trace_names": ["deleteTracker"]},
        ]
        assert made["notify_user_list"] == [{"user_group": "admins", "user_list": ["alice", "bob"]}]
        assert made["filter"] == {
            "condition": "OR",
            "is_support_filter": True,
            "rule": ["code = 200", "trace_rating != normal"],
        }
        page = (await client.get("/console/notifications?done=created%3Aconsole_logins")).text
        assert "Notification console_logins created." in page and "IAM / user: login, logout" in page

        nid = made["notification_id"]
        here = f"/console/notifications/{nid}"
        edit = (await client.get(here)).text.replace("&#34;", '"')
        assert f'value="{op("IAM", "user", "login")}" checked' in edit
        assert 'name="rule_value_2" value="normal"' in edit
        changed = [(k, v) for k, v in form if k not in ("op", "ops_text", "rule_value_2")]
        changed.append(("op", op("IAM", "user", "login")))
        resp = await post_form(client, here, here, changed)
        assert resp.status_code == 303, resp.text
        [saved] = await listed(api)
        assert saved["operations"] == [
            {"service_type": "IAM", "resource_type": "user", "trace_names": ["login"]}
        ]
        assert saved["filter"]["rule"] == ["code = 200"]

        for status in ("disabled", "enabled"):
            resp = await post_form(client, "/console/notifications", f"{here}/status", {"status": status})
            assert resp.status_code == 303, resp.text
            [now] = await listed(api)
            assert now["status"] == status and now["topic_id"] == topic
            assert now["operations"] == saved["operations"]

        resp = await post_form(client, "/console/notifications", f"{here}/delete", {})
        assert resp.status_code == 303
        assert await listed(api) == []
        assert "No key event notification yet" in (await client.get("/console/notifications")).text
    names = [t["trace_name"] for t in (await api.list(service_type="CTS")).json()["traces"]]
    assert {"createNotification", "updateNotification", "deleteNotification"} <= set(names)


async def test_a_refused_form_keeps_its_input_and_says_what_to_fix(api: Api) -> None:
    await make_topic(api)
    async with logged_in(api.app, api.creds) as client:
        new = "/console/notifications/new"
        form = {
            "notification_name": "has spaces",
            "operation_type": "customized",
            "group_1": "",
            "users_1": "carol",
            "rule_field_1": "trace_rating",
            "rule_op_1": "=",
            "rule_value_1": "bad",
        }
        resp = await post_form(client, new, new, form)
        assert resp.status_code == 400
        assert "row 1 lists users but no user group; name the group" in resp.text
        assert 'value="has spaces"' in resp.text and 'value="carol"' in resp.text
        form["group_1"] = "ops"
        resp = await post_form(client, new, new, form)
        assert resp.status_code == 400
        text = resp.text.replace("&#39;", "'")
        assert "Name: use 1 to 64 letters, digits and underscores" in text
        assert "Advanced filter: filter rule 'trace_rating = bad': trace_rating must be one of" in text
        # the whole-body rules are judged once every field is well formed, as the API judges them
        form.update(notification_name="no_ops", rule_value_1="incident")
        resp = await post_form(client, new, new, form)
        assert resp.status_code == 400
        assert "Operations: pick at least one operation, or choose every operation" in resp.text
        assert await listed(api) == []


async def test_forms_without_the_csrf_token_change_nothing(api: Api) -> None:
    topic = await make_topic(api)
    async with logged_in(api.app, api.creds) as client:
        fields = {"notification_name": "sneaky", "operation_type": "complete", "topic_id": topic}
        for action, data in (
            ("/console/notifications/new", fields),
            ("/console/topics", {"name": "sneaky"}),
            (f"/console/topics/{urllib.parse.quote(topic, safe='')}/delete", {"confirm": "yes"}),
        ):
            refused = await client.post(action, data=data)
            assert refused.status_code == 403, action
            assert "security token is missing or stale" in refused.text
            forged = await client.post(action, data={**data, "csrf_token": "x" * 43})
            assert forged.status_code == 403
        assert await listed(api) == []
        topics = (await api.client.get(f"/v2/{api.project}/notifications/topics")).json()["topics"]
        assert [t["name"] for t in topics] == ["security"]


async def test_topics_subscriptions_and_deliveries(api: Api, smtp: SmtpSink) -> None:
    async with logged_in(api.app, api.creds) as client:
        resp = await post_form(client, "/console/topics", "/console/topics", {"name": "bad name!"})
        assert resp.status_code == 400
        assert "Topic name: must be 1-255 characters of letters, digits, - and _" in resp.text
        resp = await post_form(
            client, "/console/topics", "/console/topics", {"name": "alerts", "display_name": "Alerts"}
        )
        assert resp.status_code == 303, resp.text
        here = resp.headers["location"].split("?")[0]
        urn = urllib.parse.unquote(here.rsplit("/", 1)[1])
        assert urn.endswith(f":{api.project}:alerts")
        again = await post_form(client, "/console/topics", "/console/topics", {"name": "alerts"})
        assert again.status_code == 400 and "already exists; choose another name" in again.text

        add = f"{here}/subscriptions"
        bad = await post_form(client, here, add, {"protocol": "email", "endpoint": "nope"})
        assert bad.status_code == 400
        assert "not added: email endpoint &#39;nope&#39; is not an email address. Correct it" in bad.text
        sms = await post_form(client, here, add, {"protocol": "sms", "endpoint": "+8613800000000"})
        assert sms.status_code == 400
        assert "OPENCTS_SMS_GATEWAY_URL" in sms.text and "choose another protocol" in sms.text
        http = await post_form(
            client, here, f"{here}/subscriptions", {"protocol": "http", "endpoint": "http://127.0.0.1:9/x"}
        )
        assert http.status_code == 400 and "give an address the server may reach" in http.text
        ok = await post_form(
            client, here, f"{here}/subscriptions", {"protocol": "email", "endpoint": "ops@example.com"}
        )
        assert ok.status_code == 303, ok.text
        page = (await client.get(here)).text
        assert "ops@example.com" in page and "unconfirmed" in page
        assert re.search(r'class="delivery (pending|delivering|delivered)"', page)  # the confirmation
        subs = (await api.client.get(f"/v2/{api.project}/notifications/topics/{urn}/subscriptions")).json()[
            "subscriptions"
        ]
        [sub] = subs
        assert "Confirm again" in page
        again = await post_form(
            client, here, f"{here}/subscriptions", {"protocol": "email", "endpoint": "ops@example.com"}
        )
        assert again.status_code == 303
        queued = (
            await api.client.get(
                f"/v2/{api.project}/notifications/deliveries",
                params={"subscription_urn": sub["subscription_urn"]},
            )
        ).json()["deliveries"]
        assert [d["kind"] for d in queued] == ["confirmation", "confirmation"]
        resp = await post_form(
            client, here, f"{here}/subscriptions/remove", {"subscription_urn": sub["subscription_urn"]}
        )
        assert resp.status_code == 303
        assert "No subscription" in (await client.get(here)).text

        resp = await post_form(client, here, f"{here}/delete", {})
        assert resp.status_code == 303
        assert "Topic alerts deleted." in (await client.get(resp.headers["location"])).text
    smn = (await api.list(service_type="SMN")).json()["traces"]
    done = {(t["trace_name"], t["trace_type"]) for t in smn}
    for name in ("createTopic", "addSubscription", "deleteSubscription", "deleteTopic"):
        assert (name, "ConsoleAction") in done, name


async def test_a_topic_in_use_is_not_deleted_and_the_page_says_why(api: Api) -> None:
    topic = await make_topic(api)
    body = {"notification_name": "uses_it", "operation_type": "complete", "topic_id": topic}
    assert (await api.client.post(f"/v3/{api.project}/notifications", json=body)).status_code == 201
    async with logged_in(api.app, api.creds) as client:
        here = f"/console/topics/{urllib.parse.quote(topic, safe='')}"
        resp = await post_form(client, here, f"{here}/delete", {})
        assert resp.status_code == 409
        assert "used by the CTS key event notification(s) uses_it" in resp.text


async def test_another_project_sees_none_of_this_one(api: Api) -> None:
    topic = await make_topic(api)
    body = {"notification_name": "mine", "operation_type": "complete", "topic_id": topic}
    made = (await api.client.post(f"/v3/{api.project}/notifications", json=body)).json()
    services = api.app.state.services

    def other_account(conn: Connection) -> None:
        domain_id = new_id()
        conn.execute(insert(domains).values(id=domain_id, name="other", created_at=0))
        projects.create_project(conn, domain_id=domain_id, name="r-1")
        create_member(conn, services.box, domain_id, "outsider", "CTS FullAccess", "SMN FullAccess")

    await services.db.write(other_account)
    async with browser(api.app) as client:
        resp = await log_in_form(client, account="other", user_name="outsider", password=MEMBER_PASSWORD)
        assert resp.status_code == 303
        listing = (await client.get("/console/notifications")).text
        assert "mine" not in listing and "No key event notification yet" in listing
        assert (await client.get(f"/console/notifications/{made['notification_id']}")).status_code == 404
        assert "security" not in (await client.get("/console/topics")).text
        here = f"/console/topics/{urllib.parse.quote(topic, safe='')}"
        assert (await client.get(here)).status_code == 404
        form = await client.get("/console/notifications/new")
        assert topic not in form.text
        # a URN of the other project typed into the form is refused by the repository, not used
        resp = await post_form(
            client,
            "/console/notifications/new",
            "/console/notifications/new",
            {"notification_name": "steal", "operation_type": "complete", "topic_id": topic},
        )
        assert resp.status_code == 400
        assert "can only use that project&#39;s topics" in resp.text
        token = csrf_of((await client.get("/console/notifications")).text)
        for action in (f"/console/notifications/{made['notification_id']}/delete", f"{here}/delete"):
            resp = await client.post(action, data={"csrf_token": token})
            assert resp.status_code == 404, action
    assert [n["notification_name"] for n in await listed(api)] == ["mine"]


async def test_a_read_only_user_sees_the_pages_but_changes_nothing(api: Api) -> None:
    topic = await make_topic(api)
    services = api.app.state.services
    await services.db.write(
        lambda conn: create_member(
            conn, services.box, api.creds.domain_id, "auditor", "CTS ReadOnlyAccess", "SMN ReadOnlyAccess"
        )
    )
    async with browser(api.app) as client:
        resp = await log_in_form(
            client, account=api.creds.domain_name, user_name="auditor", password=MEMBER_PASSWORD
        )
        assert resp.status_code == 303
        assert (await client.get("/console/notifications")).status_code == 200
        assert (await client.get("/console/topics")).status_code == 200
        assert (await client.get("/console/notifications/new")).status_code == 403
        token = csrf_of((await client.get("/console/notifications")).text)
        fields = {
            "csrf_token": token,
            "notification_name": "n",
            "operation_type": "complete",
            "topic_id": topic,
        }
        refused = await client.post("/console/notifications/new", data=fields)
        assert refused.status_code == 403 and "cts:notification:create" in refused.text
        refused = await client.post("/console/topics", data={"csrf_token": token, "name": "t2"})
        assert refused.status_code == 403 and "smn:topic:create" in refused.text
    assert await listed(api) == []


@pytest.mark.postgres
async def test_the_notification_flow_on_postgres(pg_api: Api) -> None:
    await test_create_modify_disable_enable_and_delete_through_the_form(pg_api)


@pytest.mark.postgres
async def test_topics_and_deliveries_on_postgres(pg_api: Api, smtp: SmtpSink) -> None:
    await test_topics_subscriptions_and_deliveries(pg_api, smtp)


@pytest.mark.postgres
async def test_isolation_on_postgres(pg_api: Api) -> None:
    await test_another_project_sees_none_of_this_one(pg_api)
