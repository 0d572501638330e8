"""A subscription's custom webhook headers cannot take over the request OpenCTS sends.

``extension.header`` is the subscriber's to set (a webhook's credentials, a team tag), but a ``Host``
picks another virtual host behind the receiver's address, and a forged ``Content-Length`` or
``Transfer-Encoding`` desynchronises the framing (request smuggling). They are refused when subscribing
and, for rows stored before the rule, dropped when sending: a real HTTP receiver checks what arrives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Connection, update

from cts_helpers import FAST_SMN, Api
from opencts.clock import now_ms
from opencts.smn import subscriptions
from opencts.smn.model import NewSubscription
from opencts.smn.signing import verify_message
from opencts.store.tables import smn_subscriptions
from opencts.testing.peers import HttpReceiver
from opencts.testing.server import RunningServer, running_server
from opencts.testing.waiting import until

#: (header, a hostile value)
FORBIDDEN = [
    ("Host", "internal-admin.example"),
    ("host", "169.254.169.254"),
    ("Content-Length", "5"),
    ("Transfer-Encoding", "chunked"),
    ("Connection", "close, X-Smn-Message-Id"),
    ("Keep-Alive", "timeout=600"),
    ("Content-Type", "text/plain"),
    ("Content-Encoding", "gzip"),
    ("TE", "trailers"),
    ("Trailer", "X-Forged"),
    ("Upgrade", "websocket"),
    ("Expect", "100-continue"),
    ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
    ("X-Smn-Message-Id", "forged"),
]


async def add(api: Api, header: dict[str, str]) -> tuple[int, dict[str, object]]:
    base = f"/v2/{api.project}/notifications"
    topic = await api.client.post(f"{base}/topics", json={"name": "hooks", "display_name": ""})
    assert topic.status_code == 200, topic.text
    urn = topic.json()["topic_urn"]
    body = {"protocol": "https", "endpoint": "https://1.1.1.1/hook", "extension": {"header": header}}
    resp = await api.client.post(f"{base}/topics/{urn}/subscriptions", json=body)
    return resp.status_code, resp.json()


@pytest.mark.parametrize(("name", "value"), FORBIDDEN, ids=[n for n, _ in FORBIDDEN])
async def test_subscribing_with_a_framing_header_is_refused(api: Api, name: str, value: str) -> None:
    status, body = await add(api, {"Authorization": "Bearer t", name: value})
    assert status == 400 and body["code"] == "SMN.00010001", body
    assert name in str(body["message"])


async def test_ordinary_headers_are_accepted(api: Api) -> None:
    status, body = await add(api, {"Authorization": "Bearer t", "X-Team": "ops"})
    assert status == 200, body


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    # the receiver is on 127.0.0.1
    async with running_server(tmp_path / "data", allow_private_endpoints=True, **FAST_SMN) as running:
        yield running


async def test_stored_framing_headers_are_dropped_when_sending(
    server: RunningServer, gateway: HttpReceiver
) -> None:
    topic = await server.topic("stored-headers")
    services = server.app.state.services
    signer = services.smn.signer
    hostile = dict(FORBIDDEN) | {"X-Team": "ops"}

    def stored_before_the_rule(conn: Connection) -> None:
        [urn] = subscriptions.add(
            conn,
            project_id=server.project,
            topic_urn=topic,
            items=[NewSubscription(protocol="http", endpoint=gateway.url)],
            signer=signer,
            box=services.box,
            now=now_ms(),
        )
        conn.execute(
            update(smn_subscriptions)
            .where(smn_subscriptions.c.subscription_urn == urn)
            .values(extension=orjson.dumps({"header": hostile}).decode())
        )
        subscriptions.confirm(conn, signer.token(urn))

    services.db.write_sync(stored_before_the_rule)
    message_id = await server.publish(topic, subject="s", message="framed by OpenCTS alone")
    await until(lambda: bool(gateway.docs("Notification")), what="the notification")
    [got] = [r for r in gateway.received if r.doc.get("type") == "Notification"]
    headers = {k.lower(): v for k, v in got.headers.items()}
    assert headers["host"] == f"127.0.0.1:{gateway.port}"
    assert headers["content-length"] == str(len(orjson.dumps(got.doc)))
    assert "transfer-encoding" not in headers and "upgrade" not in headers and "expect" not in headers
    assert "proxy-authorization" not in headers and "content-encoding" not in headers
    assert headers["content-type"].startswith("application/json")
    assert headers["x-smn-message-id"] == message_id and headers["x-team"] == "ops"
    assert got.doc["message"] == "framed by OpenCTS alone"
    assert verify_message(got.doc, services.smn.signer.cert_pem)
