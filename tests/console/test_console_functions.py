"""The console's Functions pages in process: create from the login-whitelist template, change the code and
the environment, a CTS trigger through the Create Trigger form, a test invocation and its log, the
Monitoring charts; bad forms answered with what to fix; CSRF; another project sees nothing."""

from __future__ import annotations

import re

import httpx

from console_helpers import browser, csrf_of, log_in_form, logged_in
from cts_helpers import MEMBER_PASSWORD, Api, create_member
from opencts.iam import projects
from opencts.trackers import repository
from opencts.trackers.model import UpdateTrackerRequestBody

BASE = "/console/functions/default/guard"


async def create_guard(client: httpx.AsyncClient, whitelist: str = "192.0.2.0/24") -> httpx.Response:
    page = await client.get("/console/functions/new?template=login-whitelist")
    assert page.status_code == 200, page.text
    assert "def handler(event" in page.text and 'value="login_whitelist.handler"' in page.text
    form = {
        "csrf_token": csrf_of(page.text),
        "template": "login-whitelist",
        "func_name": "guard",
        "package": "default",
        "runtime": "Python3.10",
        "handler": "login_whitelist.handler",
        "memory_size": "128",
        "timeout": "30",
        "xrole": "",
        "description": "",
        "env_key_0": "SMN_Topic",
        "env_value_0": "cts_test",
        "env_key_1": "RegionName",
        "env_value_1": "local-1",
        "env_key_2": "IP",
        "env_value_2": whitelist,
        "env_key_3": "",
        "env_value_3": "",
        "code": re.search(r'<textarea id="code"[^>]*>(.*?)</textarea>', page.text, re.S)[1]  # type: ignore[index]
        .replace("&#34;", '"')
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&"),
    }
    return await client.post("/console/functions/new", data=form)


async def test_create_from_the_template_invoke_and_read_the_log(api: Api) -> None:
    async with logged_in(api.app, api.creds) as client:
        resp = await create_guard(client)
        assert resp.status_code == 303, resp.text
        assert resp.headers["location"].startswith(BASE)
        listed = await client.get("/console/functions")
        assert 'href="/console/functions/default/guard"' in listed.text

        config = await client.get(f"{BASE}/configuration")
        assert 'value="192.0.2.0/24"' in config.text

        test = await client.get(f"{BASE}/test")
        assert "&#34;trace_name&#34;: &#34;login&#34;" in test.text
        event = (
            '{"cts": {"trace_name": "login", "source_ip": "192.0.2.7", "service_type": "IAM",'
            ' "resource_type": "user"}}'
        )
        ran = await client.post(f"{BASE}/test", data={"csrf_token": csrf_of(test.text), "event": event})
        assert ran.status_code == 200, ran.text
        assert "succeeded" in ran.text and "reasonable login" in ran.text
        request_id = re.search(r'href="/console/functions/default/guard/logs/([0-9a-f-]{36})"', ran.text)
        assert request_id is not None

        logs = await client.get(f"{BASE}/logs")
        assert request_id[1] in logs.text and "SUCCESS" in logs.text
        one = await client.get(f"{BASE}/logs/{request_id[1]}")
        assert one.status_code == 200 and "reasonable login" in one.text

        monitoring = await client.get(f"{BASE}/monitoring")
        assert monitoring.status_code == 200
        assert monitoring.text.count("<svg") == 3
        assert "1 invocations in" in monitoring.text


async def test_bad_json_and_bad_forms_say_what_to_fix(api: Api) -> None:
    async with logged_in(api.app, api.creds) as client:
        assert (await create_guard(client)).status_code == 303
        test = await client.get(f"{BASE}/test")
        bad = await client.post(f"{BASE}/test", data={"csrf_token": csrf_of(test.text), "event": "{nope"})
        assert bad.status_code == 400 and "not valid JSON" in bad.text

        again = await create_guard(client)
        assert again.status_code == 409 and "exists already" in again.text

        page = await client.get("/console/functions/new")
        form = {
            "csrf_token": csrf_of(page.text),
            "func_name": "9bad",
            "handler": "index.handler",
            "runtime": "Python3.10",
            "memory_size": "128",
            "timeout": "30",
            "code": "x = 1",
        }
        refused = await client.post("/console/functions/new", data=form)
        assert refused.status_code == 400 and "func_name" in refused.text
        assert 'value="9bad"' in refused.text  # the form comes back as typed


async def test_create_trigger_dialog_makes_a_cts_trigger(api: Api) -> None:
    async with logged_in(api.app, api.creds) as client:
        assert (await create_guard(client)).status_code == 303
        page = await client.get(f"{BASE}/triggers?create=1")
        assert "<dialog" in page.text and "You have created 0 CTS triggers" in page.text
        form = {
            "csrf_token": csrf_of(page.text),
            "trigger_type_code": "CTS",
            "notification_name": "logins",
            "op_service_0": "IAM",
            "op_resource_0": "user",
            "op_name_0": "login",
            "op_service_1": "IAM",
            "op_resource_1": "user",
            "op_name_1": "logout",
            "op_service_2": "",
            "op_resource_2": "",
            "op_name_2": "",
            "trigger_status": "ACTIVE",
        }
        made = await client.post(f"{BASE}/triggers", data=form)
        assert made.status_code == 303, made.text
        listed = await client.get(f"{BASE}/triggers")
        assert "IAM:user:login" in listed.text and "IAM:user:logout" in listed.text
        urn = f"urn:fss:{api.settings.region}:{api.creds.project_id}:function:default:guard"
        via_api = await api.client.get(f"/v2/{api.creds.project_id}/fgs/triggers/{urn}")
        assert [t["event_data"]["name"] for t in via_api.json()] == ["logins"]

        bad = {**form, "notification_name": "has space", "csrf_token": csrf_of(listed.text)}
        refused = await client.post(f"{BASE}/triggers", data=bad)
        assert refused.status_code == 400 and "name" in refused.text and "<dialog" in refused.text


async def test_a_form_without_the_csrf_token_changes_nothing(api: Api) -> None:
    async with logged_in(api.app, api.creds) as client:
        assert (await create_guard(client)).status_code == 303
        resp = await client.post(f"{BASE}/delete", data={"confirm": "yes"})
        assert resp.status_code == 403 and "security token" in resp.text
        assert (await client.get(BASE)).status_code == 200


async def test_another_project_neither_lists_nor_opens_the_function(api: Api) -> None:
    async with logged_in(api.app, api.creds) as client:
        assert (await create_guard(client)).status_code == 303
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
        listed = await client.get("/console/functions")
        assert listed.status_code == 200 and "guard" not in listed.text
        for tab in ("", "/test", "/logs", "/triggers", "/monitoring"):
            page = await client.get(BASE + tab)
            assert page.status_code == 404 and "does not exist in project r-2" in page.text
        test = await client.get("/console/functions")
        ran = await client.post(f"{BASE}/test", data={"csrf_token": csrf_of(test.text), "event": "{}"})
        assert ran.status_code == 404


async def test_roles_decide_who_reads_and_who_changes_functions(api: Api) -> None:
    async with logged_in(api.app, api.creds) as client:
        assert (await create_guard(client)).status_code == 303
    services = api.app.state.services
    domain = api.creds.domain_id

    def members(conn: object) -> None:
        create_member(conn, services.box, domain, "auditor", "CTS ReadOnlyAccess")  # type: ignore[arg-type]
        create_member(conn, services.box, domain, "viewer", "FunctionGraph ReadOnlyAccess")  # type: ignore[arg-type]

    await services.db.write(members)
    async with browser(api.app) as client:
        resp = await log_in_form(
            client, account=api.creds.domain_name, user_name="auditor", password=MEMBER_PASSWORD
        )
        assert resp.status_code == 303
        page = await client.get("/console/functions")
        assert page.status_code == 403 and "FunctionGraph ReadOnlyAccess" in page.text
    async with browser(api.app) as client:
        resp = await log_in_form(
            client, account=api.creds.domain_name, user_name="viewer", password=MEMBER_PASSWORD
        )
        assert resp.status_code == 303
        listed = await client.get("/console/functions")
        assert listed.status_code == 200 and "guard" in listed.text
        assert "Create function" not in listed.text
        assert (await client.get(f"{BASE}/logs")).status_code == 200
        refused = await client.post(f"{BASE}/delete", data={"csrf_token": csrf_of(listed.text)})
        assert refused.status_code == 403 and "FunctionGraph FullAccess" in refused.text
        assert (await client.get(BASE)).status_code == 200


async def test_an_lts_trigger_on_the_trackers_log_stream(api: Api) -> None:
    services = api.app.state.services
    body = UpdateTrackerRequestBody.model_validate(
        {"tracker_type": "system", "tracker_name": "system", "is_lts_enabled": True}
    )
    await services.db.write(
        lambda conn: repository.update_tracker(conn, project_id=api.creds.project_id, body=body)
    )
    async with logged_in(api.app, api.creds) as client:
        assert (await create_guard(client)).status_code == 303
        page = await client.get(f"{BASE}/triggers")
        stream = re.search(r'<option value="([^"]+/[^"]+)"', page.text)
        assert stream is not None, "the dialog offers no log stream"
        form = {
            "csrf_token": csrf_of(page.text),
            "trigger_type_code": "LTS",
            "log_stream": stream[1],
            "batch_size": "50",
            "trigger_status": "ACTIVE",
        }
        made = await client.post(f"{BASE}/triggers", data=form)
        assert made.status_code == 303, made.text
        listed = await client.get(f"{BASE}/triggers")
        assert "batches of 50 records" in listed.text
        refused = await client.post(
            f"{BASE}/triggers", data={**form, "csrf_token": csrf_of(listed.text), "batch_size": "0"}
        )
        assert refused.status_code == 400 and "batch_size" in refused.text
