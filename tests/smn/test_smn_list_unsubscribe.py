"""The ``List-Unsubscribe`` header of a notification email, as a real SMTP server (aiosmtpd) receives it.

RFC 2369 wants the link in angle brackets, unencoded: a header the generator folded into RFC 2047 encoded
words is no link to a mail client. RFC 8058 one-click (``List-Unsubscribe-Post``) needs an HTTPS link, so
it is offered only when the public URL is HTTPS; the POST it makes unsubscribes.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from opencts.testing.peers import Mail, SmtpSink, links_in
from opencts.testing.server import RunningServer, anonymous, running_server
from opencts.testing.waiting import until

#: RFC 2369: one or more <URL>s, comma-separated; ours is exactly one http(s) URL
ONE_LINK = re.compile(r"<(https?://[\x21-\x3b\x3d\x3f-\x7e]+)>")


def smtp_env(monkeypatch: pytest.MonkeyPatch, smtp: SmtpSink) -> None:
    for name, value in {
        "OPENCTS_SMTP_HOST": "127.0.0.1",
        "OPENCTS_SMTP_PORT": str(smtp.port),
        "OPENCTS_SMN_POLL_SECONDS": "0.1",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
async def server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp: SmtpSink
) -> AsyncIterator[RunningServer]:
    smtp_env(monkeypatch, smtp)
    async with running_server(tmp_path / "data") as running:
        yield running


async def notification_mail(server: RunningServer, smtp: SmtpSink, address: str, base: str) -> Mail:
    """Subscribe ``address``, confirm through the emailed link, publish, and return the notification."""
    topic = await server.topic("unsubscribable")
    await server.subscribe(topic, "email", address)
    await until(lambda: bool(smtp.to(address)), what="the confirmation email")
    [link] = links_in(smtp.to(address)[0].text, "/confirm?token=")
    assert (await anonymous("GET", link.replace(base, server.url))).status_code == 200
    await server.publish(topic, subject="Disk full", message="disk /var is 99% full")
    await until(lambda: len(smtp.to(address)) == 2, what="the notification email")
    return smtp.to(address)[1]


def raw_header(mail: Mail, name: str) -> list[str]:
    """The header as it crossed the wire (unfolded), not as a parser decodes it."""
    return [
        re.sub(r"\r?\n[ \t]", " ", str(v)) for k, v in mail.message.raw_items() if k.lower() == name.lower()
    ]


async def test_the_header_is_one_bracketed_link(server: RunningServer, smtp: SmtpSink) -> None:
    mail = await notification_mail(server, smtp, "ops@example.com", server.url)
    [value] = raw_header(mail, "List-Unsubscribe")
    assert "=?" not in value, f"encoded words: {value!r}"
    match = ONE_LINK.fullmatch(value)
    assert match, value
    assert match.group(1) in mail.text, "the header and the body carry the same link"
    assert match.group(1).startswith(f"{server.url}/v2/notifications/subscriptions/unsubscribe?token=")
    assert raw_header(mail, "List-Unsubscribe-Post") == [], "one-click is only offered over HTTPS"


@pytest.fixture
async def https_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp: SmtpSink
) -> AsyncIterator[RunningServer]:
    smtp_env(monkeypatch, smtp)
    monkeypatch.setenv("OPENCTS_PUBLIC_URL", "https://alerts.example.com")
    async with running_server(tmp_path / "data") as running:
        yield running


async def test_one_click_over_https(https_server: RunningServer, smtp: SmtpSink) -> None:
    server = https_server
    mail = await notification_mail(server, smtp, "oncall@example.com", "https://alerts.example.com")
    [value] = raw_header(mail, "List-Unsubscribe")
    match = ONE_LINK.fullmatch(value)
    assert match and match.group(1).startswith("https://alerts.example.com/v2/notifications/")
    assert raw_header(mail, "List-Unsubscribe-Post") == ["List-Unsubscribe=One-Click"]
    # what a mail client does for one-click (RFC 8058 §3.2), against the server behind that public name
    async with httpx.AsyncClient() as client:
        resp = await client.post(
            match.group(1).replace("https://alerts.example.com", server.url),
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert resp.status_code == 200
    subs = (await server.client.get(f"{server.base}/subscriptions")).json()["subscriptions"]
    assert [s["status"] for s in subs] == [3]
