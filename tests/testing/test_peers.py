"""The SMN peers themselves, spoken to with the standard library's own SMTP and HTTP clients."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from opencts.testing.peers import HttpReceiver, SmtpSink, links_in, serving
from opencts.testing.waiting import wait_for


def test_the_smtp_sink_keeps_each_message_and_listens_again_on_its_port(smtp: SmtpSink) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "cts@example.com", "ops@example.com", "Disk"
    message["X-Smn-Message-Id"] = "m-1"
    message.set_content("confirm at https://cts.example/confirm?token=abc now")
    with smtplib.SMTP("127.0.0.1", smtp.port) as client:
        client.send_message(message)
    [mail] = wait_for(lambda: smtp.to("ops@example.com"), 10, "the message")
    assert (mail.subject, mail.message_id) == ("Disk", "m-1")
    assert links_in(mail.text, "/confirm?token=") == ["https://cts.example/confirm?token=abc"]
    assert smtp.to("nobody@example.com") == []
    smtp.stop()
    with pytest.raises(OSError):
        smtplib.SMTP("127.0.0.1", smtp.port, timeout=2)
    smtp.start()
    with smtplib.SMTP("127.0.0.1", smtp.port) as client:
        client.send_message(message)
    wait_for(lambda: len(smtp.all()) == 2, 10, "the message after the restart")


def test_the_receiver_records_posts_refuses_while_down_and_confirms(gateway: HttpReceiver) -> None:
    assert httpx.post(gateway.url, json={"type": "Notification", "message_id": "m-1"}).status_code == 200
    gateway.down = True
    assert httpx.post(gateway.url, json={"type": "Notification", "message_id": "m-2"}).status_code == 503
    assert gateway.refused == 1
    assert gateway.docs("Notification") == [{"type": "Notification", "message_id": "m-1"}]
    assert gateway.posts()[0].headers["Content-Type"] == "application/json"


def test_a_receiver_follows_the_subscribe_url_it_is_sent() -> None:
    confirmed: list[str] = []

    class Subscribe(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            confirmed.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(Subscribe) as base, HttpReceiver() as hook:
        doc = {"type": "SubscriptionConfirmation", "subscribe_url": f"{base}/confirm?token=t"}
        assert httpx.post(hook.url, json=doc).status_code == 200
        wait_for(lambda: confirmed, 10, "the confirmation GET")
    assert confirmed == ["/confirm?token=t"]
