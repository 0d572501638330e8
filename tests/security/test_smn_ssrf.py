"""SSRF: an http(s) subscription must never make OpenCTS connect to a loopback, private or reserved address.

Every IPv6 form that embeds an internal IPv4 address, every non-global range, and host names that resolve
to them are refused when subscribing (SMN.00011001) and again when sending, after the DNS answer of that
moment; the send-time check is driven against a real HTTP receiver on 127.0.0.1 that must hear nothing.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection

from cts_helpers import FAST_SMN, Api
from opencts.clock import now_ms
from opencts.smn import subscriptions
from opencts.smn.model import NewSubscription
from opencts.smn.ssrf import EndpointRefused, check_url, is_public
from opencts.testing.peers import HttpReceiver
from opencts.testing.server import RunningServer, running_server
from opencts.testing.waiting import until

#: (address, what it is): none of these may be sent to
REFUSED = [
    ("127.0.0.1", "IPv4 loopback"),
    ("10.1.2.3", "IPv4 private"),
    ("172.16.0.1", "IPv4 private"),
    ("192.168.1.1", "IPv4 private"),
    ("169.254.169.254", "IPv4 link-local: the cloud metadata service"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("0.0.0.0", "this host"),
    ("192.0.0.8", "IETF protocol assignments"),
    ("198.18.0.1", "benchmarking"),
    ("192.0.2.1", "documentation"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "limited broadcast"),
    ("224.0.0.1", "IPv4 multicast"),
    ("::1", "IPv6 loopback"),
    ("::", "IPv6 unspecified"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:169.254.169.254", "IPv4-mapped metadata service"),
    ("::ffff:0:a01:203", "IPv4-translated private"),
    ("::7f00:1", "IPv4-compatible loopback"),
    ("::a9fe:a9fe", "IPv4-compatible metadata service"),
    ("64:ff9b::7f00:1", "NAT64 of loopback"),
    ("64:ff9b::a9fe:a9fe", "NAT64 of the metadata service"),
    ("64:ff9b::c0a8:101", "NAT64 of a private address"),
    ("64:ff9b:1::808:808", "local-use NAT64"),
    ("2002:7f00:1::1", "6to4 of loopback"),
    ("2002:a9fe:a9fe::1", "6to4 of the metadata service"),
    ("2002:c0a8:101::1", "6to4 of a private address"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo"),
    ("fec0::1", "site-local"),
    ("fc00::1", "unique local"),
    ("fd12:3456::1", "unique local"),
    ("fe80::1", "link-local"),
    ("ff02::1", "multicast, link scope"),
    ("ff0e::1", "multicast, global scope"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation (RFC 9637)"),
    ("2001:2::1", "benchmarking"),
    ("100::1", "discard-only"),
    ("5f00::1", "SRv6 SIDs"),
]
#: public addresses, some in the same wrappers: the guard refuses by what is reached, not by form
ALLOWED = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::1"]


def url_of(address: str, port: int = 80) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}/hook"


@pytest.mark.parametrize(("address", "what"), REFUSED, ids=[a for a, _ in REFUSED])
async def test_internal_addresses_are_refused(address: str, what: str) -> None:
    assert not is_public(address), what
    with pytest.raises(EndpointRefused):
        await check_url(url_of(address), allow_private=False)


@pytest.mark.parametrize("address", ALLOWED)
async def test_public_addresses_pass(address: str) -> None:
    assert is_public(address)
    await check_url(url_of(address), allow_private=False)


def loopback_names() -> list[str]:
    """Names this machine resolves (``/etc/hosts``) to loopback: ``localhost`` and, usually, its own name."""
    names = []
    for name in ("localhost", socket.gethostname()):
        try:
            found = {str(info[4][0]) for info in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)}
        except OSError:
            continue
        if found and not any(is_public(a) for a in found):
            names.append(name)
    return names


@pytest.mark.parametrize("name", loopback_names())
async def test_names_that_resolve_to_loopback_are_refused(name: str) -> None:
    with pytest.raises(EndpointRefused, match="resolves to"):
        await check_url(f"http://{name}:8080/hook", allow_private=False)


@pytest.mark.parametrize(("address", "what"), REFUSED[::3], ids=[a for a, _ in REFUSED[::3]])
async def test_subscribing_refuses_them_with_an_smn_code(api: Api, address: str, what: str) -> None:
    base = f"/v2/{api.project}/notifications"
    topic = (await api.client.post(f"{base}/topics", json={"name": "ssrf", "display_name": ""})).json()
    for protocol in ("http", "https"):
        body = {"protocol": protocol, "endpoint": url_of(address).replace("http", protocol, 1)}
        resp = await api.client.post(f"{base}/topics/{topic['topic_urn']}/subscriptions", json=body)
        assert resp.status_code == 400, (what, resp.text)
        assert resp.json()["code"] == "SMN.00011001"
    listed = (await api.client.get(f"{base}/subscriptions")).json()
    assert listed["subscription_count"] == 0


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with running_server(tmp_path / "data", **FAST_SMN) as running:
        yield running


async def wait_dead(server: RunningServer, message_id: str, timeout: float = 20.0) -> dict[str, Any]:
    dead: list[dict[str, Any]] = await until(
        lambda: server.deliveries(message_id=message_id, status="dead"),
        timeout,
        "the delivery to an internal address to go dead",
        interval=0.05,
    )
    [row] = dead
    return row


@pytest.mark.parametrize("host", ["localhost", "[::ffff:127.0.0.1]", "127.0.0.1"])
async def test_sending_checks_again(server: RunningServer, gateway: HttpReceiver, host: str) -> None:
    """A subscription that got past the first check (its name pointed elsewhere then) is not sent to."""
    topic = await server.topic("rebound")
    services = server.app.state.services
    signer = services.smn.signer

    def subscribe_confirmed(conn: Connection) -> str:
        item = NewSubscription(protocol="http", endpoint=f"http://{host}:{gateway.port}/hook")
        [urn] = subscriptions.add(
            conn,
            project_id=server.project,
            topic_urn=topic,
            items=[item],
            signer=signer,
            box=services.box,
            now=now_ms(),
        )
        subscriptions.confirm(conn, signer.token(urn))
        return urn

    urn = services.db.write_sync(subscribe_confirmed)
    message_id = await server.publish(topic, message="to the inside")
    row = await wait_dead(server, message_id)
    assert row["subscription_urn"] == urn and "resolves to" in str(row["last_error"])
    assert gateway.received == []
