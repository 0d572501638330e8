"""``opencts iam`` against a real server process: set up a read-only user, then act as them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Connection
from typer.testing import CliRunner

from cts_helpers import TraceFactory
from opencts.cli.main import app
from opencts.client.signing import HmacAuth
from opencts.iam import groups
from opencts.iam.bootstrap import ADMIN_GROUP
from opencts.iam.permissions import SECURITY_ADMINISTRATOR
from opencts.store import Database
from opencts.testing.server import ServerProcess
from opencts.testing.waiting import wait_for

pytestmark = pytest.mark.slow
runner = CliRunner()


@pytest.fixture(scope="module")
def iam_server(live_server: ServerProcess) -> ServerProcess:
    """The live server, with its first admin able to manage IAM (as the README says it is).

    The server caches who holds which role for a few seconds: if the role had to be granted here, wait
    until the server sees it.
    """
    db = Database(f"sqlite:///{live_server.data_dir / 'opencts.db'}")
    domain_id = live_server.creds.domain_id

    def grant(conn: Connection) -> bool:
        group = groups.list_groups(conn, domain_id=domain_id, name=ADMIN_GROUP)[0]
        if SECURITY_ADMINISTRATOR in groups.list_group_roles(conn, domain_id=domain_id, group_id=group.id):
            return False
        groups.grant_role(conn, domain_id=domain_id, group_id=group.id, role=SECURITY_ADMINISTRATOR)
        return True

    try:
        if db.write_sync(grant):
            auth = HmacAuth(live_server.creds.access_key, live_server.creds.secret_key)
            wait_for(
                lambda: httpx.get(f"{live_server.url}/v3/users", auth=auth).status_code == 200,
                what="the server to see the granted role",
            )
    finally:
        db.close()
    return live_server


def run(server: ServerProcess, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    target = ["--endpoint", server.url, "--data-dir", str(server.data_dir)]
    result = runner.invoke(app, [*args, *target], env={"COLUMNS": "200", **(env or {})})
    return result.exit_code, result.stdout, result.stderr


def test_read_only_user_end_to_end(
    iam_server: ServerProcess, make_trace: TraceFactory, tmp_path: Path
) -> None:
    s = iam_server
    sfx = uuid.uuid4().hex[:6]
    user, group = f"viewer-{sfx}", f"auditors-{sfx}"

    code, out, _ = run(s, "iam", "users", "create", user, "--password", "View-0nly-pass")
    assert code == 0 and f"created user {user}" in out
    assert run(s, "iam", "groups", "create", group, "--description", "read traces")[0] == 0
    code, out, _ = run(s, "iam", "groups", "add-user", group, user)  # by names
    assert code == 0 and f"added {user} to group {group}" in out
    assert run(s, "iam", "groups", "grant", group, "CTS ReadOnlyAccess")[0] == 0

    code, out, err = run(s, "iam", "credentials", "create", user, "--description", "cli test", "--json")
    assert code == 0 and "shown only now" in err
    cred = json.loads(out)["credential"]
    ak, sk = cred["access"], cred["secret"]
    assert len(ak) == 20 and len(sk) == 40

    code, out, _ = run(s, "iam", "credentials", "list", "--user", user, "--json")
    assert [c["access"] for c in json.loads(out)["credentials"]] == [ak] and sk not in out
    code, out, _ = run(s, "iam", "credentials", "list")
    assert code == 0 and ak in out and sk not in out
    code, out, _ = run(s, "iam", "groups", "list", "--json")
    mine = next(g for g in json.loads(out)["groups"] if g["name"] == group)
    assert (mine["roles"], mine["users"]) == (["CTS ReadOnlyAccess"], [user])
    code, out, _ = run(s, "iam", "users", "list")
    assert code == 0 and user in out
    code, out, _ = run(s, "iam", "roles")
    assert code == 0 and "CTS TraceProducer" in out and "cts:traces:put" in out

    as_viewer = {"OPENCTS_ACCESS_KEY": ak, "OPENCTS_SECRET_KEY": sk, "OPENCTS_PROJECT_ID": s.creds.project_id}
    code, out, err = run(s, "traces", "list", "--json", env=as_viewer)
    assert code == 0, err
    assert "traces" in json.loads(out)
    batch = tmp_path / "t.json"
    batch.write_text(json.dumps([make_trace()]))
    code, out, err = run(s, "traces", "put", str(batch), env=as_viewer)
    assert code == 1 and "403" in err and "CTS.0403" in err
    code, _, err = run(s, "iam", "users", "list", env=as_viewer)
    assert code == 1 and "CTS.0403" in err

    assert run(s, "iam", "credentials", "disable", ak)[0] == 0
    code, _, err = run(s, "traces", "list", env=as_viewer)
    assert code == 1 and "CTS.0401" in err and sk not in err
    assert run(s, "iam", "credentials", "enable", ak)[0] == 0
    assert run(s, "traces", "list", env=as_viewer)[0] == 0
    assert run(s, "iam", "users", "disable", user)[0] == 0
    assert run(s, "traces", "list", env=as_viewer)[0] == 1
    assert run(s, "iam", "users", "enable", user)[0] == 0

    for args in (
        ("groups", "revoke", group, "CTS ReadOnlyAccess"),
        ("groups", "remove-user", group, user),
        ("credentials", "delete", ak, "--yes"),
        ("groups", "delete", group, "--yes"),
        ("users", "delete", user, "--yes"),
    ):
        code, out, err = run(s, "iam", *args)
        assert code == 0, (args, out, err)
    code, out, _ = run(s, "iam", "users", "list", "--json")
    assert user not in {u["name"] for u in json.loads(out)["users"]}


def test_errors_are_explained(iam_server: ServerProcess) -> None:
    code, _, err = run(iam_server, "iam", "groups", "grant", "admin", "Root")
    assert code == 1 and "CTS.0001" in err and "valid roles" in err
    code, _, err = run(iam_server, "iam", "users", "disable", "no-such-user")
    assert code == 1 and "no user named 'no-such-user'" in err
    code, _, err = run(iam_server, "iam", "users", "create", "weak", "--password", "weakweakweak")
    assert code == 1 and "at least two" in err and "weakweakweak" not in err


def test_projects(iam_server: ServerProcess) -> None:
    name = f"r-{uuid.uuid4().hex[:6]}"
    code, out, _ = run(iam_server, "iam", "projects", "create", name)
    assert code == 0 and f"created project {name}" in out
    code, out, _ = run(iam_server, "iam", "projects", "list", "--json")
    assert name in {p["name"] for p in json.loads(out)["projects"]}
    code, out, _ = run(iam_server, "iam", "projects", "list")
    assert code == 0 and name in out


def test_unlock_lets_a_locked_out_user_in_again(iam_server: ServerProcess) -> None:
    import httpx

    user, password = f"locked-{uuid.uuid4().hex[:6]}", "L0cked-out-pass"
    assert run(iam_server, "iam", "users", "create", user, "--password", password)[0] == 0

    def login(secret: str) -> int:
        who = {"name": user, "password": secret, "domain": {"name": iam_server.creds.domain_name}}
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": who}}}}
        return httpx.post(f"{iam_server.url}/v3/auth/tokens", json=body, timeout=30).status_code

    assert [login("not-it") for _ in range(5)] == [401] * 5
    assert login(password) == 429
    code, out, err = run(iam_server, "iam", "users", "unlock", user)
    assert code == 0 and f"user {user} may log in again" in out, err
    assert login(password) == 201
    assert run(iam_server, "iam", "users", "delete", user, "--yes")[0] == 0
