"""Two OpenCTS nodes on one PostgreSQL database, behind one address (a round-robin reverse proxy).

The second node starts with nothing but the database URL and the master key: no credentials.json, no
key files. Requests alternate between the nodes, so what one node writes the other must read, an access
key made on one must verify on the other, and a webhook sent by either node must verify against the
certificate the other serves.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from opencts.client.signing import HmacAuth
from opencts.iam.bootstrap import read_credentials
from opencts.iam.secrets import new_master_key
from opencts.smn.signing import verify_message
from opencts.testing.peers import HttpReceiver
from opencts.testing.ports import free_port
from opencts.testing.server import ServerProcess
from opencts.testing.waiting import wait_for

pytestmark = pytest.mark.postgres

#: not forwarded by a proxy (RFC 9110 7.6.1), or recomputed by the client that forwards
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "content-length"}


@dataclass
class Proxy:
    """Sends each request to the next backend in turn, Host and body untouched; remembers who served."""

    backends: list[str]
    port: int = field(default_factory=free_port)
    served: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, backend
    _turn: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _upstream: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pick(self, method: str, path: str) -> str:
        with self._lock:
            backend = self.backends[self._turn % len(self.backends)]
            self._turn += 1
            self.served.append((method, path, backend))
            return backend

    def start(self) -> Proxy:
        proxy = self
        upstream = self._upstream

        class Handler(BaseHTTPRequestHandler):
            def forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                backend = proxy.pick(self.command, self.path)
                headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
                resp = upstream.request(self.command, backend + self.path, headers=headers, content=body)
                self.send_response(resp.status_code)
                for name, value in resp.headers.multi_items():
                    if name.lower() not in HOP_BY_HOP | {"content-encoding", "date", "server"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(resp.content)))
                self.end_headers()
                self.wfile.write(resp.content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._upstream.close()

    def last_backend(self) -> str:
        with self._lock:
            return self.served[-1][2]


def notifications(hook: HttpReceiver, count: int) -> Callable[[], bool]:
    return lambda: len(hook.docs("Notification")) == count


@dataclass
class Cluster:
    first: ServerProcess
    second: ServerProcess
    proxy: Proxy
    hook: HttpReceiver
    database_url: str

    def other(self, url: str) -> str:
        return self.second.url if url.startswith(self.first.url) else self.first.url


@pytest.fixture
def cluster(postgres_url: str, tmp_path: Path) -> Iterator[Cluster]:
    env = {
        "OPENCTS_DATABASE_URL": postgres_url,
        "OPENCTS_ALLOW_PRIVATE_ENDPOINTS": "1",
        "OPENCTS_INGEST_WORKERS": "0",
        # a node sends what it was asked to publish at once (publishing wakes its worker); the idle poll
        # is long so that the other node does not pick the message up first
        "OPENCTS_SMN_POLL_SECONDS": "60",
    }
    hook = HttpReceiver().start()
    first = ServerProcess(tmp_path / "first", env).start()
    nodes = [first]
    try:
        key = (first.data_dir / "master.key").read_text().strip()
        second = ServerProcess(tmp_path / "second", {**env, "OPENCTS_MASTER_KEY": key}).start()
        nodes.append(second)
        proxy = Proxy([first.url, second.url]).start()
        try:
            yield Cluster(first, second, proxy, hook, postgres_url)
        finally:
            proxy.stop()
    finally:
        errors = [node.stop() for node in nodes]
        hook.stop()
    assert not any("Traceback" in err for err in errors), errors


def test_two_nodes_behind_one_address_share_data_keys_and_the_signing_certificate(cluster: Cluster) -> None:
    # the second node joined with only the database URL and the master key
    assert not (cluster.second.data_dir / "credentials.json").exists()
    assert not (cluster.second.data_dir / "master.key").exists()
    creds = read_credentials(cluster.first.data_dir / "credentials.json")
    project = creds.project_id
    auth = HmacAuth(creds.access_key, creds.secret_key, project_id=creds.project_id)
    with httpx.Client(base_url=cluster.proxy.url, auth=auth, timeout=30) as client:
        # a trace written through one node is listed by the other
        trace_id = str(uuid.uuid4())
        trace = {
            "trace_id": trace_id,
            "trace_name": "createServer",
            "trace_type": "ApiCall",
            "trace_rating": "normal",
            "service_type": "ECS",
            "resource_type": "ecs",
            "resource_id": "srv-1",
            "resource_name": "web-1",
            "time": int(time.time() * 1000) - 5_000,
            "user": {"id": "u" * 32, "name": "alice", "domain": {"id": "d" * 32, "name": "acme"}},
            "source_ip": "10.1.2.3",
            "code": 200,
        }
        assert client.post(f"/v3/{project}/traces", json={"traces": [trace]}).status_code == 200
        wrote = cluster.proxy.last_backend()
        listed = client.get(f"/v3/{project}/traces", params={"trace_id": trace_id})
        assert cluster.proxy.last_backend() != wrote
        assert [t["trace_id"] for t in listed.json()["traces"]] == [trace_id]

        # an access key created on one node signs requests that both nodes verify
        users = client.get("/v3/users", params={"name": "admin"}).json()["users"]
        admin_id = users[0]["id"]
        made = client.post("/v3.0/OS-CREDENTIAL/credentials", json={"credential": {"user_id": admin_id}})
        assert made.status_code == 201, made.text
        created_on = cluster.proxy.last_backend()
        new = made.json()["credential"]
        with httpx.Client(
            base_url=cluster.proxy.url, auth=HmacAuth(new["access"], new["secret"]), timeout=30
        ) as ci:
            served = set()
            for _ in range(2):
                resp = ci.get("/v3/projects")
                assert resp.status_code == 200, resp.text
                served.add(cluster.proxy.last_backend())
        assert served == {cluster.first.url, cluster.second.url} and created_on in served

        # SMN: both nodes publish the same certificate, and each one's webhooks verify against the other's
        base = f"/v2/{project}/notifications"
        topic = client.post(f"{base}/topics", json={"name": "alarms", "display_name": "alarms"})
        assert topic.status_code == 200, topic.text
        urn = topic.json()["topic_urn"]
        sub = client.post(
            f"{base}/topics/{urn}/subscriptions", json={"protocol": "http", "endpoint": cluster.hook.url}
        )
        assert sub.status_code == 200, sub.text
        sub_urn = sub.json()["subscription_urn"]

        def confirmed() -> bool:
            subs = client.get(f"{base}/subscriptions").json()["subscriptions"]
            return any(s["subscription_urn"] == sub_urn and s["status"] == 1 for s in subs)

        wait_for(confirmed, 30, "the subscription to be confirmed")
        for n in range(4):
            resp = client.post(f"{base}/topics/{urn}/publish", json={"message": f"alarm {n}"})
            assert resp.status_code == 200, resp.text
            wait_for(notifications(cluster.hook, n + 1), 30, f"notification {n}")

    certs = {
        httpx.get(f"{node.url}/v2/notifications/signing-cert.pem").text
        for node in (cluster.first, cluster.second)
    }
    assert len(certs) == 1
    docs = cluster.hook.docs("SubscriptionConfirmation") + cluster.hook.docs("Notification")
    senders = {d["signing_cert_url"].split("/v2/")[0] for d in docs}
    assert senders == {cluster.first.url, cluster.second.url}, "both nodes should have sent webhooks"
    for doc in docs:
        other = cluster.other(doc["signing_cert_url"])
        cert = httpx.get(f"{other}/v2/notifications/signing-cert.pem").text
        assert verify_message(doc, cert), f"a webhook from {doc['signing_cert_url']} fails against {other}"

    # what the shared database holds is sealed: neither secret key is in it
    with psycopg.connect(cluster.database_url) as conn:
        stored = [r[0] for r in conn.execute("SELECT secret_key FROM credentials")]
        [signing_key] = conn.execute(
            "SELECT value FROM server_keys WHERE name = 'smn_signing_key'"
        ).fetchone() or [""]
    assert len(stored) == 2 and all(s.startswith("sealed:v1:") for s in stored)
    assert creds.secret_key not in stored and new["secret"] not in stored
    assert signing_key.startswith("sealed:v1:")


def test_two_nodes_started_at_once_on_an_empty_database_settle_on_one_account(
    postgres_url: str, tmp_path: Path
) -> None:
    """Both migrate, bootstrap and create a signing key at the same moment: one of each wins."""
    env = {
        "OPENCTS_DATABASE_URL": postgres_url,
        "OPENCTS_MASTER_KEY": new_master_key(),
        "OPENCTS_INGEST_WORKERS": "0",
    }
    nodes = [ServerProcess(tmp_path / name, env).launch() for name in ("a", "b")]
    try:
        for node in nodes:
            node.wait_healthy(60)
        made = [node for node in nodes if (node.data_dir / "credentials.json").exists()]
        assert len(made) == 1
        creds = read_credentials(made[0].data_dir / "credentials.json")
        certs = {httpx.get(f"{node.url}/v2/notifications/signing-cert.pem").text for node in nodes}
        assert len(certs) == 1
        auth = HmacAuth(creds.access_key, creds.secret_key, project_id=creds.project_id)
        for node in nodes:
            resp = httpx.get(f"{node.url}/v3/{creds.project_id}/traces", auth=auth)
            assert resp.status_code == 200, resp.text
    finally:
        errors = [node.stop() for node in nodes]
    assert not any("Traceback" in err for err in errors), errors
