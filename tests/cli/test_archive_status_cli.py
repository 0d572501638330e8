"""``opencts archive status`` and ``opencts archive files`` against a server transferring every second."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from opencts.cli.main import app
from opencts.client.signing import HmacAuth
from opencts.clock import iso_ms, now_ms
from opencts.testing.server import ServerProcess
from opencts.testing.waiting import wait_for

pytestmark = pytest.mark.slow
runner = CliRunner()


def run(server: ServerProcess, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--endpoint", server.url, "--data-dir", str(server.data_dir)])
    return result.exit_code, result.stdout, result.stderr


def status(server: ServerProcess) -> dict[str, Any]:
    code, out, err = run(server, "archive", "status", "--json")
    assert code == 0, err
    return {t["tracker_name"]: t for t in json.loads(out)["trackers"]}


def test_status_and_files_from_the_shell(tmp_path: Path) -> None:
    env = {"OPENCTS_TRANSFER_INTERVAL": "1", "OPENCTS_CHECKPOINT_INTERVAL": "1"}
    with ServerProcess(tmp_path / "data", env) as server:
        creds = server.creds
        auth = HmacAuth(creds.access_key, creds.secret_key, project_id=creds.project_id)
        with httpx.Client(base_url=server.url, auth=auth) as client:
            obs = {"bucket_name": "cli-archive", "is_obs_created": True}
            body = {"tracker_type": "system", "tracker_name": "system", "obs_info": obs}
            resp = client.put(f"/v3/{creds.project_id}/tracker", json=body)
            assert resp.status_code == 200, resp.text
            traces = [
                {
                    "trace_name": "login",
                    "trace_type": "ConsoleAction",
                    "service_type": "IAM",
                    "resource_type": "user",
                    "time": now_ms(),
                }
                for _ in range(25)
            ]
            resp = client.post(f"/v3/{creds.project_id}/traces", json={"traces": traces})
            assert resp.json()["accepted"] == 25, resp.text

        def caught_up() -> bool:
            mine = status(server)["system"]
            return bool(mine["lag_traces"] == 0 and mine["traces_written"] >= 25)

        wait_for(caught_up, 30, "the transfer to catch up")
        code, out, err = run(server, "archive", "status")
        assert code == 0, err
        assert "1 tracker(s) with a bucket" in out and "cli-archive" in out and "system" in out

        code, out, err = run(server, "archive", "files", "--tracker", "system", "--json")
        assert code == 0, err
        found = json.loads(out)["files"]
        assert sum(f["trace_count"] for f in found) == status(server)["system"]["traces_written"]
        for f in found:
            assert (server.data_dir / "buckets" / "cli-archive" / f["object_key"]).is_file()
        today = iso_ms(now_ms())[:10]
        code, out, err = run(server, "archive", "files", "--tracker", "system", "--day", today)
        assert code == 0, err
        assert f"{len(found)} file(s)" in out and found[0]["sha256"][:8] in out

        code, _, err = run(server, "archive", "files", "--tracker", "system", "--day", "yesterday")
        assert code == 1 and err.startswith("error:") and "YYYY-MM-DD" in err
        code, _, err = run(server, "archive", "status", "--tracker", "nope")
        assert code == 1 and "nope" in err
