"""The negative authentication matrix against a real server: every refusal, once, in one table.

Not a speed benchmark: a readable proof that each way in that must fail does fail, with the right status
and CTS error code, and that no answer carries a secret key. Starts ``opencts serve`` on a free port in a
scratch data dir, sets up the users it needs through the IAM API (and a second account directly in the
database: the API never creates accounts), runs each case once and exits 1 if any case is wrong.

    .venv/bin/python benchmarks/auth_matrix.py
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson
from _server import bench_server, remove_dir, scratch_dir
from rich.console import Console
from rich.table import Table
from sqlalchemy import Connection, insert

from opencts.client.signing import sign_headers
from opencts.iam import groups, projects
from opencts.iam.bootstrap import ADMIN_GROUP, BootstrapCredentials
from opencts.iam.permissions import SECURITY_ADMINISTRATOR
from opencts.iam.secrets import new_id
from opencts.store import Database
from opencts.store.tables import domains
from opencts.testing.server import signer

PASSWORD = "Matrix-Pass-1"
console = Console(highlight=False)


@dataclass(frozen=True)
class Key:
    user_id: str
    access_key: str
    secret_key: str


@dataclass(frozen=True)
class Case:
    name: str
    expected: int
    run: Callable[[], httpx.Response]


class Matrix:
    """The server, its first admin, and the users and projects the cases need."""

    def __init__(self, url: str, data_dir: Path, creds: BootstrapCredentials) -> None:
        self.url = url
        self.creds = creds
        self.project = self.creds.project_id
        self.raw = httpx.Client(base_url=url, timeout=30)
        self.admin = httpx.Client(base_url=url, timeout=30, auth=signer(creds))
        self.other_project = self._prepare_database(data_dir)
        self.reader = self.member("reader", "CTS ReadOnlyAccess")
        self.producer = self.member("producer", "CTS TraceProducer")
        self.doomed = self.member("doomed", "CTS ReadOnlyAccess")
        created = self.admin.post("/v3/projects", json={"project": {"name": "second"}})
        self.second_project = str(self.ok(created)["project"]["id"])
        self.secrets = [self.creds.secret_key, self.reader.secret_key, self.producer.secret_key]

    def _prepare_database(self, data_dir: Path) -> str:
        """Before any signed call (so nothing is cached): let the first admin manage IAM, as the README says
        it does, and create a second account with a project. Returns that project's id."""
        db = Database(f"sqlite:///{data_dir / 'opencts.db'}")
        domain_id = self.creds.domain_id

        def prepare(conn: Connection) -> str:
            group = groups.list_groups(conn, domain_id=domain_id, name=ADMIN_GROUP)[0]
            groups.grant_role(conn, domain_id=domain_id, group_id=group.id, role=SECURITY_ADMINISTRATOR)
            other = new_id()
            conn.execute(insert(domains).values(id=other, name="other-account", created_at=0))
            return projects.create_project(conn, domain_id=other, name="r-1").id

        try:
            return db.write_sync(prepare)
        finally:
            db.close()

    @staticmethod
    def ok(resp: httpx.Response) -> Any:
        if resp.status_code >= 400:
            raise SystemExit(f"setup failed: {resp.request.method} {resp.request.url.path}: {resp.text}")
        return resp.json() if resp.content else None

    def member(self, name: str, role: str) -> Key:
        body = {"user": {"name": name, "password": PASSWORD}}
        user = self.ok(self.admin.post("/v3.0/OS-USER/users", json=body))
        group = self.ok(self.admin.post("/v3/groups", json={"group": {"name": f"{name}-group"}}))
        user_id, group_id = user["user"]["id"], group["group"]["id"]
        self.ok(self.admin.put(f"/v3/groups/{group_id}/users/{user_id}"))
        self.ok(self.admin.put(f"/v3/groups/{group_id}/roles/{quote(role)}"))
        new_key = {"credential": {"user_id": user_id}}
        cred = self.ok(self.admin.post("/v3.0/OS-CREDENTIAL/credentials", json=new_key))
        return Key(user_id, cred["credential"]["access"], cred["credential"]["secret"])

    def signed(
        self,
        method: str,
        path: str,
        key: Key | None = None,
        *,
        body: bytes = b"",
        send_body: bytes | None = None,
        project: str | None = None,
        now: datetime | None = None,
        secret_key: str | None = None,
    ) -> Callable[[], httpx.Response]:
        """A request signed now, sent when called: calling it twice sends the same bytes twice."""
        access_key = key.access_key if key else self.creds.access_key
        sk = secret_key or (key.secret_key if key else self.creds.secret_key)
        headers = sign_headers(
            method=method,
            url=self.url + path,
            body=body,
            access_key=access_key,
            secret_key=sk,
            now=now,
            headers={"Content-Type": "application/json", "X-Project-Id": project or self.project},
        )
        content = body if send_body is None else send_body
        return lambda: self.raw.request(method, path, headers=headers, content=content)

    def login(self, name: str, password: str) -> httpx.Response:
        user = {"name": name, "password": password, "domain": {"name": self.creds.domain_name}}
        body = {
            "auth": {
                "identity": {"methods": ["password"], "password": {"user": user}},
                "scope": {"project": {"id": self.project}},
            }
        }
        return self.raw.post("/v3/auth/tokens", json=body)


def trace_batch() -> bytes:
    now = int(time.time() * 1000)
    trace = {
        "trace_id": new_id(),
        "trace_name": "createServer",
        "trace_type": "ApiCall",
        "trace_rating": "normal",
        "service_type": "ECS",
        "resource_type": "ecs",
        "time": now - 1000,
        "user": {"name": "bench", "domain": {"name": "bench"}},
    }
    return orjson.dumps({"traces": [trace]})


def cases(m: Matrix) -> list[Case]:
    traces = f"/v3/{m.project}/traces"
    reader_key = f"/v3.0/OS-CREDENTIAL/credentials/{m.reader.access_key}"

    def replay() -> httpx.Response:
        send = m.signed("POST", "/v3/groups", body=b'{"group": {"name": "replayed"}}')
        send()
        return send()

    def ingest_retry() -> httpx.Response:
        send = m.signed("POST", traces, m.producer, body=trace_batch())
        send()
        return send()

    def disabled_key() -> httpx.Response:
        m.ok(m.signed("PUT", reader_key, body=b'{"credential": {"status": "inactive"}}')())
        return m.signed("GET", traces, m.reader)()

    def reenabled_key() -> httpx.Response:
        m.ok(m.signed("PUT", reader_key, body=b'{"credential": {"status": "active"}}')())
        return m.signed("GET", traces, m.reader)()

    def deleted_user() -> httpx.Response:
        m.ok(m.signed("DELETE", f"/v3/users/{m.doomed.user_id}")())
        return m.signed("GET", traces, m.doomed)()

    def token_other_project() -> httpx.Response:
        token = m.login("reader", PASSWORD).headers["X-Subject-Token"]
        return m.raw.get(f"/v3/{m.second_project}/traces", headers={"X-Auth-Token": token})

    def locked_out() -> httpx.Response:
        m.member("victim", "CTS ReadOnlyAccess")
        for _ in range(5):
            m.login("victim", "Guess-Pass-99")
        return m.login("victim", PASSWORD)

    def token_after_logout() -> httpx.Response:
        token = m.login("reader", PASSWORD).headers["X-Subject-Token"]
        m.raw.delete("/v3/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token})
        return m.raw.get(traces, headers={"X-Auth-Token": token})

    tracker = b'{"tracker_type": "system", "tracker_name": "system", "status": "disabled"}'
    sign, other, second = m.signed, m.other_project, m.second_project
    ghost = Key("-", "NOSUCHKEYNOSUCHKEY00", "s" * 40)
    batch = trace_batch()
    tracker_path = f"/v3/{m.project}/tracker"
    old, future = datetime.now(UTC) - timedelta(minutes=16), datetime.now(UTC) + timedelta(minutes=16)
    return [
        Case("no signature", 401, lambda: m.raw.get(traces)),
        Case("wrong secret key", 401, m.signed("GET", traces, secret_key="x" * 40)),
        Case("body swapped after signing", 401, sign("POST", traces, body=b"{}", send_body=batch)),
        Case("X-Sdk-Date 16 min old", 401, m.signed("GET", traces, now=old)),
        Case("X-Sdk-Date 16 min ahead", 401, m.signed("GET", traces, now=future)),
        Case("replayed write (2nd send)", 401, replay),
        Case("retried ingest (2nd send)", 200, ingest_retry),
        Case("unknown access key", 401, sign("GET", traces, ghost)),
        Case("disabled access key", 401, disabled_key),
        Case("re-enabled access key", 200, reenabled_key),
        Case("deleted user's key", 401, deleted_user),
        Case("another account's project", 403, sign("GET", f"/v3/{other}/traces", project=other)),
        Case("own second project (AK/SK)", 200, sign("GET", f"/v3/{second}/traces", project=second)),
        Case("X-Project-Id != path", 403, sign("GET", f"/v3/{second}/traces")),
        Case("read-only: list traces", 200, m.signed("GET", traces, m.reader)),
        Case("read-only: put traces", 403, m.signed("POST", traces, m.reader, body=trace_batch())),
        Case("read-only: update tracker", 403, sign("PUT", tracker_path, m.reader, body=tracker)),
        Case("producer: put traces", 200, m.signed("POST", traces, m.producer, body=trace_batch())),
        Case("producer: list traces", 403, m.signed("GET", traces, m.producer)),
        Case("token in another project", 403, token_other_project),
        Case("token after logout", 401, token_after_logout),
        Case("wrong password", 401, lambda: m.login("reader", "Wrong-Pass-99")),
        Case("unknown user", 401, lambda: m.login("nobody", PASSWORD)),
        Case("right password after 5 wrong", 429, locked_out),
        Case("literal {project_id} path", 403, m.signed("GET", "/v3/%7Bproject_id%7D/traces")),
    ]


def main() -> None:
    data_dir = scratch_dir("auth-matrix-") / "data"
    failures = 0
    try:
        server = bench_server(data_dir)
        url = server.url
        matrix = Matrix(url, data_dir, server.creds)
        table = Table(title=f"authentication matrix against {urlsplit(url).netloc}")
        for col in ("case", "expected", "status", "error_code", "ok"):
            table.add_column(col)
        for case in cases(matrix):
            resp = case.run()
            code = resp.json().get("error_code", "") if resp.status_code >= 400 else ""
            leaked = any(secret in resp.text for secret in matrix.secrets)
            wanted_code = {401: "CTS.0401", 403: "CTS.0403", 429: "CTS.0430"}.get(case.expected, "")
            ok = resp.status_code == case.expected and code == wanted_code and not leaked
            failures += not ok
            verdict = "[green]yes[/]" if ok else "[red]NO[/]" + (" (secret leaked)" if leaked else "")
            table.add_row(case.name, str(case.expected), str(resp.status_code), code, verdict)
        console.print(table)
        server.stop()
    finally:
        remove_dir(data_dir.parent)
    console.print(f"{failures} case(s) wrong" if failures else "every case answered as expected")
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
