"""Logins to inboxes through a function, end to end: the issue's "Show", with nothing faked.

OpenCTS serves on a real port (uvicorn in this loop), trusting 127.0.0.1 as a proxy so that each login's
``X-Forwarded-For`` is its source address; an aiosmtpd server accepts the mail; an SMN topic has a
confirmed email subscription. A function with a CTS trigger on ``IAM:user:login`` and ``logout`` runs in
the isolated pool and publishes through SMN with its context's token. The template alarms only for
addresses outside its whitelist; the seeds' sample, deployed with only its host changed, shows its bugs:
it alarms for the whitelisted address and for nothing else.

"Nothing arrives" is asserted once the pipeline has drained: every invocation has finished (its record
says SUCCESS) and the SMN outbox holds nothing pending.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdksmn.v2 import PublishMessageRequest, PublishMessageRequestBody, SmnClient

from opencts.functions import repository
from opencts.functions.credentials import AgencyCredentials
from opencts.functions.templates import TEMPLATES, source
from opencts.iam.bootstrap import BootstrapCredentials
from opencts.store import Database
from opencts.store.tables import function_invocations
from opencts.testing.peers import SmtpSink, links_in
from opencts.testing.server import RunningServer, anonymous, running_server
from opencts.testing.waiting import until

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).with_name("samples") / "login_logout_sample.py.txt"
SAMPLE_HOST = '"https://smn."+regionName+".otc.t-systems.com/v2/"'
OPERATIONS = ["IAM:user:login", "IAM:user:logout"]


def alarms(sink: SmtpSink) -> list[str]:
    """The first line of each alarm mail (the rest is the unsubscribe footer)."""
    return [m.text.splitlines()[0] for m in sink.all() if m.text.startswith("Illegal operation")]


@dataclass
class Stack:
    server: RunningServer
    sink: SmtpSink
    topic: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def project(self) -> str:
        return self.server.project

    @property
    def creds(self) -> BootstrapCredentials:
        return self.server.creds

    @property
    def api(self) -> httpx.AsyncClient:
        return self.server.client

    @property
    def app(self) -> Any:
        return self.server.app

    @property
    def db(self) -> Database:
        db: Database = self.server.app.state.services.db
        return db

    @property
    def region(self) -> str:
        return str(self.server.app.state.services.settings.region)

    def alarms(self) -> list[str]:
        return alarms(self.sink)

    async def deploy(self, name: str, filename: str, code: bytes, handler: str, env: dict[str, str]) -> str:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(filename, code)
        body = {
            "func_name": name,
            "package": "default",
            "runtime": "Python3.10",
            "handler": handler,
            "memory_size": 256,
            "timeout": 30,
            "code_type": "zip",
            "code_filename": f"{name}.zip",
            "func_code": {"file": base64.b64encode(buffer.getvalue()).decode()},
            "user_data": json.dumps(env),
            "xrole": "serverless_trust",
        }
        made = await self.api.post(f"/v2/{self.project}/fgs/functions", json=body)
        assert made.status_code < 300, made.text
        urn = str(made.json()["func_urn"])
        trigger = {
            "trigger_type_code": "CTS",
            "event_data": {"name": f"{name}_logins", "operations": OPERATIONS},
        }
        resp = await self.api.post(f"/v2/{self.project}/fgs/triggers/{quote(urn, safe='')}", json=trigger)
        assert resp.status_code == 201, resp.text
        return urn

    async def login(self, ip: str) -> str:
        """A password login from ``ip`` (as the trusted proxy says); its token."""
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self.creds.user_name,
                            "password": self.creds.password,
                            "domain": {"name": self.creds.domain_name},
                        }
                    },
                },
                "scope": {"project": {"id": self.project}},
            }
        }
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as bare:
            resp = await bare.post("/v3/auth/tokens", json=body, headers={"X-Forwarded-For": ip})
        assert resp.status_code == 201, resp.text
        return resp.headers["x-subject-token"]

    async def logout(self, ip: str, token: str) -> None:
        headers = {"X-Auth-Token": token, "X-Subject-Token": token, "X-Forwarded-For": ip}
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as bare:
            resp = await bare.delete("/v3/auth/tokens", headers=headers)
        assert resp.status_code == 204, resp.text

    async def finished(self, count: int) -> bool:
        """Whether ``count`` trigger invocations succeeded (none failed) and SMN has nothing pending."""

        def read(conn: Any) -> list[str]:
            rows = conn.execute(
                function_invocations.select().where(function_invocations.c.source == "trigger")
            ).all()
            return [r.status for r in rows]

        statuses = await self.db.read(read)
        assert "FAIL" not in statuses, statuses
        if statuses.count("SUCCESS") < count:
            return False
        pending = await self.api.get(
            f"/v2/{self.project}/notifications/deliveries", params={"status": "pending"}
        )
        return pending.status_code == 200 and not pending.json()["deliveries"]

    async def invocation_results(self) -> list[str]:
        def read(conn: Any) -> list[str]:
            rows = conn.execute(
                function_invocations.select()
                .where(function_invocations.c.source == "trigger")
                .order_by(function_invocations.c.id)
            ).all()
            return [json.loads(r.result) for r in rows]  # the handler's return value, as JSON

        return list(await self.db.read(read))


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    with SmtpSink() as sink:
        async with running_server(
            tmp_path / "data",
            trusted_proxies="127.0.0.1",
            smtp_host="127.0.0.1",
            smtp_port=sink.port,
            smtp_security="none",
            smtp_from="cts@example.com",
            functions_workers=2,
            ingest_workers=0,
        ) as server:
            topic = await server.topic("cts_test")
            await server.subscribe(topic, "email", "secops@example.com")
            mails = await until(sink.all, 30, "the confirmation email")
            [link] = links_in(mails[0].text, "/confirm?token=")
            assert (await anonymous("GET", link)).status_code == 200
            yield Stack(server, sink, topic)


async def test_the_template_alarms_for_logins_and_logouts_outside_its_whitelist(stack: Stack) -> None:
    filename, handler, _ = TEMPLATES["login-whitelist"]
    env = {
        "SMN_Topic": "cts_test",
        "RegionName": stack.region,
        "IP": "10.0.0.0/8, 2001:db8::/32",
        "SMN_ENDPOINT": stack.url,
    }
    await stack.deploy("guard", filename, source("login-whitelist"), handler, env)

    token = await stack.login("203.0.113.9")
    await until(lambda: len(stack.alarms()) >= 1, 60, "the login alarm")
    await stack.logout("203.0.113.9", token)
    await until(lambda: len(stack.alarms()) >= 2, 60, "the logout alarm")
    assert stack.alarms() == [
        "Illegal operation[IP:203.0.113.9, Action:login]",
        "Illegal operation[IP:203.0.113.9, Action:logout]",
    ]

    # whitelisted, by range: an address in 10.0.0.0/8 and one in 2001:db8::/32, each login and logout
    for ip in ("10.0.0.1", "2001:db8::7"):
        await stack.logout(ip, await stack.login(ip))
    await until(lambda: stack.finished(6), 60, "the six invocations to finish")
    assert len(stack.alarms()) == 2
    results = await stack.invocation_results()
    assert results.count("send alarm success") == 2 and results.count("reasonable login") == 2


async def test_the_seeds_sample_runs_as_written_and_shows_its_bug(stack: Stack) -> None:
    code = SAMPLE.read_text()
    assert SAMPLE_HOST in code
    code = code.replace(SAMPLE_HOST, json.dumps(stack.url + "/v2/"))  # the one change a user makes
    env = {"SMN_Topic": "cts_test", "RegionName": stack.region, "IP": "10.0.0.1"}
    await stack.deploy("sample", "index.py", code.encode(), "index.handler", env)

    listed = await stack.login("10.0.0.1")  # whitelisted: the sample alarms
    await until(lambda: stack.alarms(), 60, "the sample's alarm for the whitelisted address")
    await stack.logout("10.0.0.1", listed)  # logouts are never checked
    await stack.logout("203.0.113.9", await stack.login("203.0.113.9"))  # outside: no alarm
    await until(lambda: stack.finished(4), 60, "the four invocations to finish")
    assert stack.alarms() == ["Illegal operation[  IP:10.0.0.1,  Action:login]"]
    results = await stack.invocation_results()
    assert results.count("action is fail") == 2 and "reasonable login" in results


async def test_the_sdk_publishes_with_a_functions_temporary_credentials(stack: Stack) -> None:
    """``BasicCredentials(...).with_security_token(...)``, as a handler builds it from its context."""
    filename, handler, _ = TEMPLATES["login-whitelist"]
    urn = await stack.deploy("sdk_user", filename, source("login-whitelist"), handler, {})
    services = stack.app.state.services
    record = await services.db.read(lambda conn: repository.get_by_urn(conn, stack.project, urn))
    issued = await AgencyCredentials(services.db, services.box)(record, record.timeout)
    assert issued is not None

    def publish(credentials: Any) -> Any:
        client = (
            SmnClient.new_builder()
            .with_http_config(HttpConfig.get_default_config())
            .with_credentials(credentials)
            .with_endpoint(stack.url)
            .build()
        )
        body = PublishMessageRequestBody(
            subject="CTSTrigger", message="Illegal operation[IP:198.51.100.1, Action:login]"
        )
        return client.publish_message(PublishMessageRequest(topic_urn=stack.topic, body=body))

    temporary = BasicCredentials(issued.access_key, issued.secret_key, stack.project).with_security_token(
        issued.security_token
    )
    sent = await asyncio.to_thread(publish, temporary)
    assert sent.message_id
    await until(lambda: stack.alarms(), 60, "the published alarm")
    assert stack.alarms() == ["Illegal operation[IP:198.51.100.1, Action:login]"]

    without_token = BasicCredentials(issued.access_key, issued.secret_key, stack.project)
    with pytest.raises(ClientRequestException) as caught:
        await asyncio.to_thread(publish, without_token)
    assert caught.value.status_code == 401
