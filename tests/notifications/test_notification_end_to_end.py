"""Key events to inboxes, end to end: a real server process, a real SMTP server, a real webhook.

A topic gets an email and an HTTP subscriber (both confirmed through their real links), a notification
watches IAM logins by alice and bob that succeeded from the console, and traces are ingested over the
API. Exactly one email and one webhook arrive per matching trace; nothing arrives for the others.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from cts_helpers import TraceFactory
from opencts.testing.peers import HttpReceiver, SmtpSink
from opencts.testing.server import start_server
from opencts.testing.waiting import wait_for

pytestmark = pytest.mark.slow
CONFIRM_LINK = re.compile(r"https?://\S+/confirm\?token=\S+")


def texts(smtp: SmtpSink) -> list[tuple[str, str]]:
    return [(mail.subject, mail.text) for mail in smtp.all()]


def login(make_trace: TraceFactory, user: str, **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "service_type": "IAM", "resource_type": "user", "trace_name": "login", "trace_type": "ConsoleAction",
        "resource_name": user, "resource_id": f"id-{user}", "source_ip": "198.51.100.7",
        "user": {"name": user, "domain": {"name": "acme"}},
    }  # fmt: skip
    return make_trace(**{**fields, **extra})


def test_alarms_reach_email_and_webhook_once_per_matching_trace(
    tmp_path: Path, smtp: SmtpSink, hook: HttpReceiver, make_trace: TraceFactory
) -> None:
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
        with server.client() as api:
            smn = f"/v2/{creds.project_id}/notifications"
            topic = api.post(f"{smn}/topics", json={"name": "security", "display_name": "Security"}).json()
            urn = topic["topic_urn"]
            for protocol, endpoint in (("email", "secops@example.com"), ("http", hook.url)):
                resp = api.post(
                    f"{smn}/topics/{urn}/subscriptions", json={"protocol": protocol, "endpoint": endpoint}
                )
                assert resp.status_code < 300, resp.text
            wait_for(lambda: texts(smtp), 30, "the confirmation email")
            [(_, confirmation)] = texts(smtp)
            [link] = CONFIRM_LINK.findall(confirmation)
            assert httpx.get(link).status_code == 200

            def confirmed() -> bool:
                subs = api.get(f"{smn}/topics/{urn}/subscriptions").json()["subscriptions"]
                return [s["status"] for s in subs] == [1, 1]

            wait_for(confirmed, 30, "both subscriptions to be confirmed")

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

            # The notifier reads the log in order: once the alarm of a later trace has gone out and nothing
            # waits in the outbox, every alarm of the seven (a duplicate, a non-matching trace) has too.
            sentinel = login(make_trace, "bob", resource_name="sentinel")
            resp = api.post(f"/v3/{creds.project_id}/traces", json={"traces": [sentinel]})
            assert resp.status_code == 200, resp.text

            def sentinel_sent() -> bool:
                email_seen = any(sentinel["trace_id"] in text for _, text in texts(smtp))
                hook_seen = any(sentinel["trace_id"] in d["message"] for d in hook.docs("Notification"))
                return email_seen and hook_seen

            def outbox_empty() -> bool:
                deliveries = api.get(f"{smn}/deliveries", params={"limit": 100}).json()["deliveries"]
                return all(d["status"] == "delivered" for d in deliveries)

            wait_for(sentinel_sent, 30, "the alarms of the sentinel trace")
            wait_for(outbox_empty, 30, "every delivery to be recorded")
            alarms = [
                (subject, text) for subject, text in texts(smtp)[1:] if sentinel["trace_id"] not in text
            ]
            notes = [d for d in hook.docs("Notification") if sentinel["trace_id"] not in d["message"]]
            assert len(alarms) == 2 and len(notes) == 2

            stored = {}
            for trace in matching:
                found = api.get(
                    f"/v3/{creds.project_id}/traces", params={"trace_id": trace["trace_id"]}
                ).json()
                [stored[trace["trace_id"]]] = found["traces"]
    finally:
        server.stop()

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
    for doc in notes:
        assert doc["subject"].startswith("[CTS][") and doc["topic_urn"] == urn
        message = orjson.loads(doc["message"])
        assert message["notification_name"] == "console_logins"
        webhook[message["trace"]["trace_id"]] = message["trace"]
    assert set(webhook) == {alice["trace_id"], bob["trace_id"]}
    for trace_id, trace in webhook.items():
        assert trace == stored[trace_id], "the webhook carries the whole stored trace"
