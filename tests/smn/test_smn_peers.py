"""SMN end to end with real peers: an SMTP server, a webhook, an SMS gateway, all over TCP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from cts_helpers import Api
from opencts.smn.signing import verify_message
from opencts.testing.peers import HttpReceiver, SmtpSink, links_in
from opencts.testing.server import RunningServer, anonymous, running_server
from opencts.testing.waiting import until


@pytest.fixture
async def server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp: SmtpSink, gateway: HttpReceiver
) -> AsyncIterator[RunningServer]:
    env = {
        "OPENCTS_SMTP_HOST": "127.0.0.1",
        "OPENCTS_SMTP_PORT": str(smtp.port),
        "OPENCTS_SMTP_SECURITY": "none",
        "OPENCTS_SMTP_FROM": "alarms@opencts.test",
        "OPENCTS_SMS_GATEWAY_URL": gateway.url,
        "OPENCTS_ALLOW_PRIVATE_ENDPOINTS": "1",
        "OPENCTS_SMN_RETRY_BASE_SECONDS": "0.2",
        "OPENCTS_SMN_RETRY_MAX_SECONDS": "0.5",
        "OPENCTS_SMN_POLL_SECONDS": "0.2",
        "OPENCTS_SMN_SEND_TIMEOUT_SECONDS": "2",
        "OPENCTS_SMN_LEASE_SECONDS": "5",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    async with running_server(tmp_path / "data") as running:
        yield running


async def confirm_by_email(server: RunningServer, smtp: SmtpSink, topic: str, address: str) -> str:
    sub = await server.subscribe(topic, "email", address)
    await until(lambda: bool(smtp.to(address)), what="the confirmation email")
    mail = smtp.to(address)[0]
    assert "Confirm" in str(mail.message["Subject"])
    [link] = links_in(mail.text, "/confirm?token=")
    assert link.startswith(server.url)
    resp = await anonymous("GET", link)
    assert resp.status_code == 200 and resp.json()["result"] == "confirmed"
    assert await server.status(sub) == 1
    return sub


async def test_email_confirm_link_then_messages(server: RunningServer, smtp: SmtpSink) -> None:
    topic = await server.topic("email-alarms")
    await confirm_by_email(server, smtp, topic, "ops@example.com")
    message_id = await server.publish(topic, subject="Disk full", message="disk /var is 99% full")
    await until(lambda: len(smtp.to("ops@example.com")) == 2, what="the notification email")
    mail = smtp.to("ops@example.com")[1]
    assert mail.message["Subject"] == "Disk full"
    assert mail.message_id == message_id
    assert "disk /var is 99% full" in mail.text
    assert "alarms@opencts.test" in str(mail.message["From"])
    [unsubscribe] = links_in(mail.text, "/unsubscribe?token=")
    assert (await anonymous("POST", unsubscribe)).json()["result"] == "unsubscribed"
    await server.publish(topic, message="after unsubscribing")
    await server.app.state.services.smn.worker.drain()
    assert len(smtp.to("ops@example.com")) == 2


async def test_unconfirmed_subscribers_get_nothing(server: RunningServer, smtp: SmtpSink) -> None:
    topic = await server.topic("quiet")
    await server.subscribe(topic, "email", "later@example.com")
    await until(lambda: bool(smtp.to("later@example.com")), what="the confirmation email")
    await server.publish(topic, message="not for you yet")
    await server.app.state.services.smn.worker.drain()
    assert len(smtp.to("later@example.com")) == 1


async def test_webhook_confirms_and_verifies_the_signature(server: RunningServer, hook: HttpReceiver) -> None:
    topic = await server.topic("hooks")
    sub = await server.subscribe(topic, "http", hook.url, extension={"header": {"Authorization": "Bearer t"}})
    await until(lambda: bool(hook.docs("SubscriptionConfirmation")), what="the confirmation POST")
    confirmation = hook.docs("SubscriptionConfirmation")[0]
    assert confirmation["subscription_urn"] == sub and confirmation["topic_urn"] == topic
    cert = (
        await anonymous("GET", confirmation["signing_cert_url"])
    ).text  # unauthenticated, as a receiver fetches it
    assert verify_message(confirmation, cert)
    await server.wait_status(sub, 1)

    structure = orjson.dumps({"default": "plain", "http": "for webhooks"}).decode()
    message_id = await server.publish(topic, subject="s", message_structure=structure)
    await until(lambda: bool(hook.docs("Notification")), what="the notification POST")
    got = hook.received[-1]
    doc = got.doc
    assert doc["message_id"] == message_id and doc["message"] == "for webhooks" and doc["subject"] == "s"
    assert got.headers["X-Smn-Message-Id"] == message_id
    assert got.headers["X-Smn-Topic-Urn"] == topic
    assert got.headers["Authorization"] == "Bearer t"
    assert doc["signing_cert_url"] == f"{server.url}/v2/notifications/signing-cert.pem"
    assert verify_message(doc, cert)
    assert not verify_message({**doc, "message": "tampered"}, cert)


async def test_sms_goes_through_the_gateway(server: RunningServer, gateway: HttpReceiver) -> None:
    topic = await server.topic("pager")
    sub = await server.subscribe(topic, "sms", "+86 138 0000 0000")
    await until(lambda: bool(gateway.docs()), what="the confirmation SMS")
    first = gateway.docs()[0]
    assert first["number"] == "+8613800000000"
    [link] = links_in(first["text"], "/confirm?token=")
    assert (await anonymous("GET", link)).status_code == 200
    assert await server.status(sub) == 1
    structure = orjson.dumps({"default": "long text for everyone", "sms": "short"}).decode()
    await server.publish(topic, message_structure=structure)
    await until(lambda: len(gateway.docs()) == 2, what="the SMS")
    assert gateway.docs()[1] == {
        "number": "+8613800000000",
        "text": "short",
        "message_id": gateway.docs()[1]["message_id"],
    }


async def test_the_ssrf_guard_refuses_private_webhooks_by_default(api: Api, hook: HttpReceiver) -> None:
    base = f"/v2/{api.project}/notifications"
    topic = (await api.client.post(f"{base}/topics", json={"name": "t", "display_name": ""})).json()[
        "topic_urn"
    ]
    private = ("http://localhost:9/x", "http://10.1.2.3/x", "http://169.254.169.254/latest", "http://[::1]/")
    for url in (hook.url, *private):
        resp = await api.client.post(
            f"{base}/topics/{topic}/subscriptions", json={"protocol": "http", "endpoint": url}
        )
        assert resp.status_code == 400, url
        assert "OPENCTS_ALLOW_PRIVATE_ENDPOINTS" in resp.json()["message"]
    assert hook.received == []


async def test_a_webhook_that_is_down_for_a_while_gets_every_message(
    server: RunningServer, hook: HttpReceiver
) -> None:
    topic = await server.topic("flaky")
    sub = await server.subscribe(topic, "http", hook.url)
    await server.wait_status(sub, 1)
    hook.down = True
    ids = [await server.publish(topic, message=f"alarm {i}") for i in range(5)]
    await until(lambda: hook.refused >= 10, what="a few refused attempts")
    hook.down = False
    await until(lambda: len(hook.docs("Notification")) >= 5, what="every message after the outage")
    assert sorted(d["message_id"] for d in hook.docs("Notification")) == sorted(ids)

    async def recorded() -> list[
        dict[str, Any]
    ]:  # the receiver saw it; the result is recorded a moment later
        rows = await server.deliveries(status="delivered", subscription_urn=sub)
        return rows if {r["message_id"] for r in rows} >= set(ids) else []

    rows = await until(recorded, what="the deliveries to be recorded as delivered")
    assert all(r["attempts"] > 1 for r in rows if r["message_id"] in ids)


async def test_smtp_server_down_then_back(server: RunningServer, smtp: SmtpSink) -> None:
    topic = await server.topic("mail-outage")
    sub = await confirm_by_email(server, smtp, topic, "oncall@example.com")
    smtp.stop()
    ids = [await server.publish(topic, subject=f"m{i}", message="x") for i in range(3)]

    async def failing() -> list[dict[str, Any]]:  # a few attempts fail against the closed port
        rows = [r for r in await server.deliveries(subscription_urn=sub) if r["message_id"] in ids]
        return rows if len(rows) == 3 and all(r["attempts"] >= 2 for r in rows) else []

    rows = await until(failing, what="attempts against the closed port")
    assert not [r for r in rows if r["status"] in ("delivered", "dead")]
    assert all("SMTP" in str(r["last_error"]) for r in rows)
    smtp.start()  # the same port again
    await until(lambda: len(smtp.to("oncall@example.com")) >= 4, what="the mails after the outage")
    notes = smtp.to("oncall@example.com")[1:]  # after the confirmation
    assert sorted(m.message_id for m in notes) == sorted(ids)


async def test_past_time_to_live_it_is_dead_until_retried(server: RunningServer, hook: HttpReceiver) -> None:
    topic = await server.topic("ttl")
    sub = await server.subscribe(topic, "http", hook.url)
    await server.wait_status(sub, 1)
    hook.down = True
    message_id = await server.publish(topic, message="short-lived", time_to_live="1")

    found = await until(
        lambda: server.deliveries(status="dead", message_id=message_id), what="the delivery to go dead"
    )
    [row] = found
    assert "503" in str(row["last_error"])
    hook.down = False
    resp = await server.client.post(f"{server.base}/deliveries/{row['id']}/retry")
    assert resp.status_code == 200 and resp.json()["delivery"]["status"] == "pending"
    await until(lambda: bool(hook.docs("Notification")), what="the retried message")
    assert hook.docs("Notification")[0]["message_id"] == message_id
    again = await server.client.post(f"{server.base}/deliveries/{row['id']}/retry")
    assert again.status_code == 409
