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
import email
import email.policy
import io
import json
import re
import threading
import time
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdksmn.v2 import PublishMessageRequest, PublishMessageRequestBody, SmnClient

from opencts.api.app import create_app
from opencts.config import Settings
from opencts.functions import repository
from opencts.functions.credentials import AgencyCredentials
from opencts.functions.templates import TEMPLATES, source
from opencts.iam.bootstrap import BootstrapCredentials, read_credentials
from opencts.iam.signature import HmacAuth
from opencts.store.tables import function_invocations

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).with_name("samples") / "login_logout_sample.py.txt"
SAMPLE_HOST = '"https://smn."+regionName+".otc.t-systems.com/v2/"'
CONFIRM = re.compile(r"https?://\S+/confirm\?token=\S+")
OPERATIONS = ["IAM:user:login", "IAM:user:logout"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(predicate: Callable[[], Any], what: str, timeout: float = 60.0) -> None:
    """Wait without blocking the loop that serves OpenCTS."""
    deadline = time.monotonic() + timeout
    while not await _holds(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def _holds(predicate: Callable[[], Any]) -> bool:
    value = predicate()
    if asyncio.iscoroutine(value):
        value = await value
    return bool(value)


@dataclass
class Inbox:
    """aiosmtpd's handler: every accepted message's subject and text."""

    mails: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        part = msg.get_body(("plain",))
        with self.lock:
            self.mails.append((str(msg["Subject"]), str(part.get_content()) if part is not None else ""))
        return "250 accepted"

    def alarms(self) -> list[str]:
        """The first line of each alarm (the rest is the unsubscribe footer)."""
        with self.lock:
            return [text.splitlines()[0] for _, text in self.mails if text.startswith("Illegal operation")]


@dataclass
class Stack:
    url: str
    settings: Settings
    creds: BootstrapCredentials
    api: httpx.AsyncClient
    inbox: Inbox
    topic: str
    db: Any
    app: Any

    @property
    def project(self) -> str:
        return self.creds.project_id

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
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    port = free_port()
    settings = Settings(
        data_dir=tmp_path / "data",
        bind=f"127.0.0.1:{port}",
        trusted_proxies="127.0.0.1",
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_security="none",
        smtp_from="cts@example.com",
        functions_workers=2,
        ingest_workers=0,
    )
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started or task.done(), "the server to start", 30)
        if task.done():
            task.result()
        creds = read_credentials(settings.credentials_path)
        url = f"http://127.0.0.1:{port}"
        auth = HmacAuth(creds.access_key, creds.secret_key, project_id=creds.project_id)
        async with httpx.AsyncClient(base_url=url, auth=auth, timeout=30) as api:
            smn = f"/v2/{creds.project_id}/notifications"
            made = await api.post(f"{smn}/topics", json={"name": "cts_test", "display_name": "CTS test"})
            topic = str(made.json()["topic_urn"])
            sub = await api.post(
                f"{smn}/topics/{topic}/subscriptions",
                json={"protocol": "email", "endpoint": "secops@example.com"},
            )
            assert sub.status_code == 200, sub.text
            await until(lambda: inbox.mails, "the confirmation email", 30)
            [link] = CONFIRM.findall(inbox.mails[0][1])
            async with httpx.AsyncClient(timeout=30) as anonymous:
                assert (await anonymous.get(link, headers={"Accept": "application/json"})).status_code == 200
            yield Stack(url, settings, creds, api, inbox, topic, app.state.services.db, app)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 60)
        smtp.stop()


async def test_the_template_alarms_for_logins_and_logouts_outside_its_whitelist(stack: Stack) -> None:
    filename, handler, _ = TEMPLATES["login-whitelist"]
    env = {
        "SMN_Topic": "cts_test",
        "RegionName": stack.settings.region,
        "IP": "10.0.0.0/8, 2001:db8::/32",
        "SMN_ENDPOINT": stack.url,
    }
    await stack.deploy("guard", filename, source("login-whitelist"), handler, env)

    token = await stack.login("203.0.113.9")
    await until(lambda: len(stack.inbox.alarms()) >= 1, "the login alarm")
    await stack.logout("203.0.113.9", token)
    await until(lambda: len(stack.inbox.alarms()) >= 2, "the logout alarm")
    assert stack.inbox.alarms() == [
        "Illegal operation[IP:203.0.113.9, Action:login]",
        "Illegal operation[IP:203.0.113.9, Action:logout]",
    ]

    # whitelisted, by range: an address in 10.0.0.0/8 and one in 2001:db8::/32, each login and logout
    for ip in ("10.0.0.1", "2001:db8::7"):
        await stack.logout(ip, await stack.login(ip))
    await until(lambda: stack.finished(6), "the six invocations to finish")
    assert len(stack.inbox.alarms()) == 2
    results = await stack.invocation_results()
    assert results.count("send alarm success") == 2 and results.count("reasonable login") == 2


async def test_the_seeds_sample_runs_as_written_and_shows_its_bug(stack: Stack) -> None:
    code = SAMPLE.read_text()
    assert SAMPLE_HOST in code
    code = code.replace(SAMPLE_HOST, json.dumps(stack.url + "/v2/"))  # the one change a user makes
    env = {"SMN_Topic": "cts_test", "RegionName": stack.settings.region, "IP": "10.0.0.1"}
    await stack.deploy("sample", "index.py", code.encode(), "index.handler", env)

    listed = await stack.login("10.0.0.1")  # whitelisted: the sample alarms
    await until(lambda: stack.inbox.alarms(), "the sample's alarm for the whitelisted address")
    await stack.logout("10.0.0.1", listed)  # logouts are never checked
    await stack.logout("203.0.113.9", await stack.login("203.0.113.9"))  # outside: no alarm
    await until(lambda: stack.finished(4), "the four invocations to finish")
    assert stack.inbox.alarms() == ["Illegal operation[  IP:10.0.0.1,  Action:login]"]
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
    await until(lambda: stack.inbox.alarms(), "the published alarm")
    assert stack.inbox.alarms() == ["Illegal operation[IP:198.51.100.1, Action:login]"]

    without_token = BasicCredentials(issued.access_key, issued.secret_key, stack.project)
    with pytest.raises(ClientRequestException) as caught:
        await asyncio.to_thread(publish, without_token)
    assert caught.value.status_code == 401
