"""Console login, sessions and CSRF, in process: password and AK/SK logins, the cookie's flags, idle
expiry, logout, lockout, and the IAM traces logins and logouts leave."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import update

from console_helpers import browser, csrf_of, log_in_form, log_in_password, logged_in
from cts_helpers import Api, in_process_api
from opencts.clock import now_ms
from opencts.config import Settings
from opencts.store.tables import console_sessions


async def test_pages_without_a_session_redirect_to_the_login_form_keeping_the_query(api: Api) -> None:
    async with browser(api.app) as client:
        resp = await client.get("/console/traces?range=1d&trace_rating=incident")
        assert resp.status_code == 303
        assert (
            resp.headers["location"]
            == "/console/login?next=%2Fconsole%2Ftraces%3Frange%3D1d%26trace_rating%3Dincident"
        )
        login = await client.get(resp.headers["location"])
        assert login.status_code == 200
        assert 'name="next" value="/console/traces?range=1d&amp;trace_rating=incident"' in login.text
        assert login.headers["cache-control"] == "no-store"


async def test_password_login_sets_a_hardened_cookie_and_lands_where_it_was_going(api: Api) -> None:
    async with browser(api.app) as client:
        page = await client.get("/console/login")
        resp = await client.post(
            "/console/login",
            data={
                "csrf_token": csrf_of(page.text),
                "method": "password",
                "account": api.creds.domain_name,
                "user_name": api.creds.user_name,
                "password": api.creds.password,
                "next": "/console/trackers",
            },
        )
        assert resp.status_code == 303, resp.text
        assert resp.headers["location"] == "/console/trackers"
        cookie = next(c for c in resp.headers.get_list("set-cookie") if c.startswith("opencts_console="))
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
        assert "Secure" not in cookie  # plain HTTP here; behind TLS the flag is set (next test)
        dash = await client.get("/console/")
        assert dash.status_code == 200
        assert api.creds.user_name in dash.text and "Log out" in dash.text


async def test_behind_tls_the_cookie_is_secure_and_next_cannot_leave_the_console(api: Api) -> None:
    async with browser(api.app, base_url="https://console.example") as client:
        page = await client.get("/console/login")
        resp = await client.post(
            "/console/login",
            data={
                "csrf_token": csrf_of(page.text),
                "account": api.creds.domain_name,
                "user_name": api.creds.user_name,
                "password": api.creds.password,
                "next": "//evil.example/console/",
            },
        )
        assert resp.status_code == 303
        assert resp.headers["location"] == "/console/"
        cookie = next(c for c in resp.headers.get_list("set-cookie") if c.startswith("opencts_console="))
        assert "Secure" in cookie


async def test_aksk_login_and_wrong_secrets_say_what_to_fix(api: Api) -> None:
    async with browser(api.app) as client:
        wrong = await log_in_form(client, method="aksk", access_key=api.creds.access_key, secret_key="nope")
        assert wrong.status_code == 401
        assert "access key or secret key is wrong" in wrong.text
        assert api.creds.secret_key not in wrong.text
        for _ in range(50):  # the refusal is a warning trace in the key owner's trail
            listed = (await api.list(service_type="IAM", trace_rating="warning")).json()["traces"]
            if listed:
                break
            await asyncio.sleep(0.05)
        assert (
            listed[0]["trace_name"] == "login" and listed[0]["user"]["access_key_id"] == api.creds.access_key
        )
        right = await log_in_form(
            client, method="aksk", access_key=api.creds.access_key, secret_key=api.creds.secret_key
        )
        assert right.status_code == 303
        assert (await client.get("/console/traces")).status_code == 200


async def test_a_form_without_its_csrf_token_is_refused(api: Api) -> None:
    async with browser(api.app) as client:
        await client.get("/console/login")
        forged = await client.post(
            "/console/login",
            data={"account": api.creds.domain_name, "user_name": api.creds.user_name, "password": "x"},
        )
        assert forged.status_code == 403
        assert "reload the login page" in forged.text
    async with logged_in(api.app, api.creds) as client:
        resp = await client.post("/console/trackers/system/status", data={"status": "disabled"})
        assert resp.status_code == 403 and "security token" in resp.text
        listed = await client.get("/console/trackers")
        assert "enabled" in listed.text  # nothing changed
        resp = await client.post("/console/logout", data={"csrf_token": "guessed"})
        assert resp.status_code == 403
        assert (await client.get("/console/")).status_code == 200  # still logged in


async def test_logout_ends_the_session_everywhere_and_both_are_iam_traces(api: Api) -> None:
    async with logged_in(api.app, api.creds) as client:
        cookie = client.cookies["opencts_console"]
        page = await client.get("/console/")
        out = await client.post("/console/logout", data={"csrf_token": csrf_of(page.text)})
        assert out.status_code == 303 and out.headers["location"] == "/console/login"
    async with browser(api.app) as stolen:
        stolen.cookies.set("opencts_console", cookie)
        assert (await stolen.get("/console/")).status_code == 303
    for _ in range(50):
        traces = (await api.list(service_type="IAM", trace_type="system", limit=50)).json()["traces"]
        names = [t["trace_name"] for t in traces if t["trace_type"] == "ConsoleAction"]
        if "logout" in names:
            break
        await asyncio.sleep(0.05)
    assert "login" in names and "logout" in names
    login = next(t for t in traces if t["trace_name"] == "login" and t["trace_type"] == "ConsoleAction")
    assert login["source_ip"] == "127.0.0.1"
    assert login["user"]["name"] == api.creds.user_name
    assert api.creds.password not in str(traces)


async def test_an_idle_session_expires(api: Api) -> None:
    async with logged_in(api.app, api.creds) as client:
        db = api.app.state.services.db
        old = now_ms() - 31 * 60_000
        await db.write(lambda conn: conn.execute(update(console_sessions).values(last_seen_at=old)))
        resp = await client.get("/console/traces")
        assert resp.status_code == 303 and resp.headers["location"].startswith("/console/login")


async def test_wrong_passwords_lock_the_console_login_like_the_api(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", ingest_workers=0, login_max_failures=2)
    async with in_process_api(settings) as api, browser(api.app) as client:
        for _ in range(settings.login_max_failures):
            resp = await log_in_form(
                client, account=api.creds.domain_name, user_name=api.creds.user_name, password="wrong"
            )
            assert resp.status_code == 401
        locked = await log_in_password(client, api.creds)
        assert locked.status_code == 429
        assert "try again in" in locked.text
        assert int(locked.headers["retry-after"]) > 0
