"""Key events to inboxes, end to end: a real server process, a real SMTP server, a real webhook.

A topic gets an email and an HTTP subscriber (both confirmed through their real links), a notification
watches IAM logins by alice and bob that succeeded from the console, and traces are ingested over the
API. Exactly one email and one webhook arrive per matching trace; nothing arrives for the others.
"""

from __future__ import annotations

import email
import email.policy
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from conftest import TraceFactory, free_port, start_server, stop_server
from opencts.iam.signature import HmacAuth

pytestmark = pytest.mark.slow
CONFIRM_LINK = re.compile(r"https?://\S+/confirm\?token=\S+")


@dataclass
class Inbox:
    """An aiosmtpd handler keeping every accepted message (with the time the server accepted it)."""

    mails: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        with self.lock:
            self.mails.append(msg)
        return "250 accepted"

    def texts(self) -> list[tuple[str, str]]:
        with self.lock:
            found = []
            for m in self.mails:
                part = m.get_body(("plain",))
                found.append((str(m["Subject"]), str(part.get_content()) if part is not None else ""))
            return found


@dataclass
class Webhook:
    """An HTTP receiver recording JSON POSTs; it confirms a SubscriptionConfirmation by GETting its link."""

    port: int = field(default_factory=free_port)
    docs: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cts-alarms"

    def start(self) -> Webhook:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                doc = orjson.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
                with hook.lock:
                    hook.docs.append(doc)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if doc.get("type") == "SubscriptionConfirmation":
                    threading.Thread(target=httpx.get, args=(doc["subscribe_url"],), daemon=True).start()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def notifications(self) -> list[dict[str, Any]]:
        with self.lock:
            return [d for d in self.docs if d.get("type") == "Notification"]


def wait(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def peers() -> Iterator[tuple[Inbox, Controller, Webhook]]:
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    hook = Webhook().start()
    try:
        yield inbox, smtp, hook
    finally:
        smtp.stop()
        hook.stop()


def login(make_trace: TraceFactory, user: str, **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "service_type": "IAM", "resource_type": "user", "trace_name": "login", "trace_type": "ConsoleAction",
        "resource_name": user, "resource_id": f"id-{user}", "source_ip": "198.51.100.7",
        "user": {"name": user, "domain": {"name": "acme"}},
    }  # fmt: skip
    return make_trace(**{**fields, **extra})


def test_alarms_reach_email_and_webhook_once_per_matching_trace(
    tmp_path: Path, peers: tuple[Inbox, Controller, Webhook], make_trace: TraceFactory
) -> None:
    inbox, smtp, hook = peers
    env = {
        "OPENCTS_SMTP_HOST": "127.0.0.1",
        "OPENCTS_SMTP_PORT": str(smtp.port),
        "OPENCTS_SMTP_SECURITY": "none",
        "OPENCTS_SMTP_FROM": "cts@example.com",
        "OPENCTS_ALLOW_PRIVATE_ENDPOINTS": "1",
    }
    server = start_server(tmp_path / "data", env)
    try:
        creds = server.creds
        auth = HmacAuth(creds.access_key, creds.secret_key, project_id=creds.project_id)
        with httpx.Client(base_url=server.url, auth=auth, timeout=30) as api:
            smn = f"/v2/{creds.project_id}/notifications"
            topic = api.post(f"{smn}/topics", json={"name": "security", "display_name": "Security"}).json()
            urn = topic["topic_urn"]
            for protocol, endpoint in (("email", "secops@example.com"), ("http", hook.url)):
                resp = api.post(
                    f"{smn}/topics/{urn}/subscriptions", json={"protocol": protocol, "endpoint": endpoint}
                )
                assert resp.status_code < 300, resp.text
            wait(lambda: bool(inbox.texts()), "the confirmation email")
            [(_, confirmation)] = inbox.texts()
            [link] = CONFIRM_LINK.findall(confirmation)
            assert httpx.get(link).status_code == 200

            def confirmed() -> bool:
                subs = api.get(f"{smn}/topics/{urn}/subscriptions").json()["subscriptions"]
                return [s["status"] for s in subs] == [1, 1]

            wait(confirmed, "both subscriptions to be confirmed")

            notification = {
                "notification_name": "console_logins",
                "operation_type": "customized",
                "operations": [{"service_type": "IAM", "resource_type": "user", "trace_names": ["login"]}],
                "notify_user_list": [{"user_group": "admins", "user_list": ["alice", "bob"]}],
                "filter": {"condition": "AND", "is_support_filter": True,
                           "rule": ["code = 200", "trace_type = ConsoleAction"]},
                "topic_id": urn,
            }  # fmt: skip
            resp = api.post(f"/v3/{creds.project_id}/notifications", json=notification)
            assert resp.status_code == 201, resp.text

            matching = [login(make_trace, "alice", trace_rating="warning"), login(make_trace, "bob")]
            others = [
                login(make_trace, "carol"),  # not in notify_user_list
                login(make_trace, "alice", code=401, trace_rating="warning"),  # filter: code
                login(make_trace, "bob", trace_type="ApiCall"),  # filter: trace_type
                make_trace(service_type="IAM", resource_type="user", trace_name="logout",
                           user={"name": "alice"}),  # another operation
                make_trace(),  # another service
            ]  # fmt: skip
            resp = api.post(f"/v3/{creds.project_id}/traces", json={"traces": [*others, *matching]})
            assert resp.status_code == 200 and resp.json()["accepted"] == 7, resp.text

            wait(lambda: len(inbox.texts()) >= 3 and len(hook.notifications()) >= 2, "the alarms")
            time.sleep(1.5)  # anything extra (a duplicate, a non-matching trace) would arrive by now
            alarms = inbox.texts()[1:]
            assert len(alarms) == 2 and len(hook.notifications()) == 2

            stored = {}
            for trace in matching:
                found = api.get(
                    f"/v3/{creds.project_id}/traces", params={"trace_id": trace["trace_id"]}
                ).json()
                [stored[trace["trace_id"]]] = found["traces"]
    finally:
        stop_server(server)

    by_trace = {}
    for subject, text in alarms:
        [trace_id] = [t["trace_id"] for t in matching if t["trace_id"] in text]
        by_trace[trace_id] = (subject, text)
    alice, bob = matching
    subject, text = by_trace[alice["trace_id"]]
    assert subject == "[CTS][warning] login on IAM user alice by alice"
    for needle in ("Operation:     login", "Service:       IAM", "Resource type: user",
                   "Resource name: alice", "Resource ID:   id-alice", "User:          alice (account acme)",
                   "Source IP:     198.51.100.7", "Rating:        warning", "Code:          200",
                   "console_logins"):  # fmt: skip
        assert needle in text, needle
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(alice["time"] / 1000))
    assert f"Time:          {when}." in text
    assert by_trace[bob["trace_id"]][0] == "[CTS][normal] login on IAM user bob by bob"

    webhook = {}
    for doc in hook.notifications():
        assert doc["subject"].startswith("[CTS][") and doc["topic_urn"] == urn
        message = orjson.loads(doc["message"])
        assert message["notification_name"] == "console_logins"
        webhook[message["trace"]["trace_id"]] = message["trace"]
    assert set(webhook) == {alice["trace_id"], bob["trace_id"]}
    for trace_id, trace in webhook.items():
        assert trace == stored[trace_id], "the webhook carries the whole stored trace"
