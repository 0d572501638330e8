"""``opencts iam source-tokens`` and ``opencts sources kubernetes-config`` against a real server process:
the printed kubeconfig is what an API server would use, so the test posts an EventList the way it would
(to the kubeconfig's server, with its token) over HTTP."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from k8s_events import event_list
from typer.testing import CliRunner

from opencts.cli.main import app
from opencts.testing.server import ServerProcess

pytestmark = pytest.mark.slow
runner = CliRunner()


def run(server: ServerProcess, *args: str) -> tuple[int, str, str]:
    target = ["--endpoint", server.url, "--data-dir", str(server.data_dir)]
    result = runner.invoke(app, [*args, *target], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def test_create_configure_post_and_revoke(live_server: ServerProcess, tmp_path: Path) -> None:
    s = live_server
    project = s.creds.project_id
    name = f"cluster-{uuid.uuid4().hex[:6]}"
    code, out, err = run(
        s, "iam", "source-tokens", "create", name, "--project", project, "--source", "kubernetes"
    )
    assert code == 0, out + err
    token = out.strip().splitlines()[-1]
    assert token.startswith("ocst_") and "shown only now" in err

    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    args = ["sources", "kubernetes-config", "--project", project, "--token-file", str(token_file)]
    printed = runner.invoke(app, [*args, "--endpoint", s.url])  # no credentials needed
    assert printed.exit_code == 0, printed.output
    config = yaml.safe_load(printed.stdout)
    assert config["kind"] == "Config" and config["current-context"] == "opencts"
    server = config["clusters"][0]["cluster"]["server"]
    assert server == f"{s.url}/v3/{project}/sources/kubernetes"
    assert config["users"][0]["user"]["token"] == token
    public = runner.invoke(app, args, env={"OPENCTS_PUBLIC_URL": "https://cts.example.com/"})
    server_of = yaml.safe_load(public.stdout)["clusters"][0]["cluster"]["server"]
    assert server_of == f"https://cts.example.com/v3/{project}/sources/kubernetes"

    audit_id = str(uuid.uuid4())
    headers = {"Authorization": f"Bearer {token}"}
    resp = httpx.post(server, json=event_list(audit_id), headers=headers, timeout=30)
    assert resp.status_code == 200 and resp.json()["accepted"] == 1, resp.text
    with s.client() as admin:
        found = admin.get(f"/v3/{project}/traces", params={"trace_id": f"{audit_id}.ResponseComplete"}).json()
    assert [t["resource_name"] for t in found["traces"]] == ["default/web"]

    code, out, _ = run(s, "iam", "source-tokens", "list", "--project", project, "--json")
    listed = {t["name"]: t for t in json.loads(out)["source_tokens"]}
    assert listed[name]["status"] == "active" and token not in out

    code, out, err = run(s, "iam", "source-tokens", "revoke", name, "--project", project)
    assert code == 0 and "revoked" in out, out + err
    resp = httpx.post(server, json=event_list(str(uuid.uuid4())), headers=headers, timeout=30)
    assert resp.status_code == 401
    code, out, err = run(s, "iam", "source-tokens", "revoke", "nope", "--project", project)
    assert code == 1 and "no source token" in out + err
