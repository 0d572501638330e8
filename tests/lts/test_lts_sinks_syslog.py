"""The syslog sink against a real rsyslog (Debian's package): RFC 5424, octet counting, TLS both ways.

rsyslog is started by the test with its own config: ``imtcp`` with the ``ossl`` driver, a test CA made
here with ``cryptography``, a client certificate required, and every message written to a file this test
reads back. A sink that does not trust the server's CA, or has no client certificate, delivers nothing
and shows the error.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from lts_sinks_helpers import add_sink, feed, forwarder, listing, setup_project
from opencts.lts.sinks.batch import Record
from opencts.lts.sinks.syslog import frame, message
from opencts.store import Database
from opencts.testing.sink_peers import Pki, Rsyslog, make_pki, rsyslogd

pytestmark = pytest.mark.skipif(rsyslogd() is None, reason="rsyslogd is not installed (.ci/run installs it)")
PKI = make_pki() if rsyslogd() else None


@pytest.fixture
def db(database: Database) -> Database:
    return setup_project(database)


@pytest.fixture
def rsyslog(tmp_path: Path) -> Any:
    assert PKI is not None
    with Rsyslog(tmp_path / "rsyslog", PKI) as server:
        yield server


def syslog_sink(db: Database, rsyslog: Rsyslog, pki: Pki, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sink_type": "syslog",
        "endpoint": f"127.0.0.1:{rsyslog.port}",
        "ca_cert": pki.ca_cert,
        "client_cert": pki.client_cert,
        "client_private_key": pki.client_key,
        "hostname": "cts-node-1",
        "batch_size": 4,
        **extra,
    }
    return add_sink(db, "unused", **body)


async def wait_lines(rsyslog: Rsyslog, n: int) -> list[str]:
    for _ in range(100):
        if len(rsyslog.lines()) >= n:
            break
        await asyncio.sleep(0.05)
    return rsyslog.lines()


def test_a_message_is_rfc5424_with_the_trace_as_json_and_counted_octets() -> None:
    trace = {"trace_id": "t-1", "trace_name": "deleteServer", "trace_rating": "incident"}
    content = '{"trace_id":"t-1","trace_name":"deleteServer","trace_rating":"incident","note":"é\\n"}'
    msg = message(
        Record(7, "t-1", 1_700_000_000_123, 0, content, trace),
        stream_id="s-1",
        hostname="host",
        app_name="opencts",
        facility=13,
    )
    assert msg.startswith(
        b'<106>1 2023-11-14T22:13:20.123Z host opencts - deleteServer [opencts@32473 log_uid="7" stream="s-1"'
        b' trace_id="t-1"] {'
    )
    framed = frame(msg)
    length, _, rest = framed.partition(b" ")
    assert int(length) == len(rest) == len(msg)


async def test_rsyslog_receives_every_record_over_mutual_tls_in_order(db: Database, rsyslog: Rsyslog) -> None:
    assert PKI is not None
    syslog_sink(db, rsyslog, PKI)
    ids = await feed(db, 10, trace_rating="warning", trace_name="deleteServer")
    f = forwarder(db)
    assert await f.drain() == 10
    lines = await wait_lines(rsyslog, 10)
    assert [m["trace_id"] for m in rsyslog.messages()] == ids
    tag, msgid, sd, _ = lines[0].split("|", 3)
    assert tag == "opencts" and msgid == "deleteServer"
    assert sd.startswith("[opencts@32473 log_uid=") and 'trace_id="t-00000"' in sd
    # rsyslog restarts (an outage): records meanwhile are retried, then all arrive once, in order
    rsyslog.stop()
    later = await feed(db, 6, start=50)
    await f.step()
    [shown] = listing(db)
    assert shown["state"] == "error" and "connect" in shown["last_error"]
    rsyslog.start()
    for _ in range(60):
        await f.drain()
        if listing(db)[0]["lag_records"] == 0:
            break
        await asyncio.sleep(0.1)
    await wait_lines(rsyslog, 16)
    assert [m["trace_id"] for m in rsyslog.messages()] == ids + later
    await f.aclose()


async def test_an_untrusted_server_or_a_missing_client_certificate_delivers_nothing(
    db: Database, rsyslog: Rsyslog
) -> None:
    assert PKI is not None
    other = make_pki()
    syslog_sink(db, rsyslog, PKI, sink_name="wrong-ca", ca_cert=other.ca_cert)
    syslog_sink(db, rsyslog, PKI, sink_name="no-client-cert", client_cert=None, client_private_key=None)
    await feed(db, 3)
    f = forwarder(db)
    await f.step()
    await asyncio.sleep(0.5)
    await f.step()
    shown = {s["sink_name"]: s for s in listing(db)}
    assert "CERTIFICATE_VERIFY_FAILED" in shown["wrong-ca"]["last_error"]
    assert shown["no-client-cert"]["state"] == "error"
    assert shown["no-client-cert"]["delivered"] == 0 and shown["wrong-ca"]["delivered"] == 0
    assert rsyslog.lines() == []
    await f.aclose()
