"""The ``opencts`` command against a real server process."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cts_helpers import TraceFactory
from opencts.cli.main import app
from opencts.cli.timeparse import parse_time
from opencts.testing.server import ServerProcess

pytestmark = pytest.mark.slow
runner = CliRunner()


def run(server: ServerProcess, *args: str, input: str | None = None) -> tuple[int, str]:
    result = runner.invoke(
        app,
        [*args, "--endpoint", server.url, "--data-dir", str(server.data_dir)],
        input=input,
        env={"COLUMNS": "200"},
    )
    return result.exit_code, result.stdout


def test_first_start_writes_private_credentials(live_server: ServerProcess) -> None:
    path = live_server.data_dir / "credentials.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    creds = json.loads(path.read_text())
    assert set(creds) == {
        "domain_id",
        "domain_name",
        "project_id",
        "project_name",
        "region",
        "user_name",
        "password",
        "access_key",
        "secret_key",
    }
    assert len(creds["project_id"]) == 32


def test_put_list_and_export(live_server: ServerProcess, make_trace: TraceFactory, tmp_path: Path) -> None:
    traces = [make_trace(user={"name": "cli-user"}, service_type="RDS") for _ in range(30)]
    ndjson = tmp_path / "t.ndjson"
    ndjson.write_text("\n".join(json.dumps(t) for t in traces))
    code, out = run(live_server, "traces", "put", str(ndjson))
    assert code == 0, out
    assert "accepted 30" in out
    code, out = run(live_server, "traces", "put", "-", input=json.dumps({"traces": traces}))
    assert code == 0 and "duplicates 30" in out

    code, out = run(live_server, "traces", "list", "--user", "cli-user", "--limit", "200", "--json")
    assert code == 0
    assert len(json.loads(out)["traces"]) == 30
    code, out = run(
        live_server, "traces", "list", "--user", "cli-user", "--limit", "7", "--pages", "10", "--json"
    )
    assert len({t["trace_id"] for t in json.loads(out)["traces"]}) == 30
    code, out = run(live_server, "traces", "list", "--user", "cli-user")
    assert code == 0 and "cli-user" in out and "RDS" in out

    target = tmp_path / "out.csv"
    code, _ = run(live_server, "traces", "export", "--user", "cli-user", "-o", str(target))
    assert code == 0
    assert len(target.read_text(encoding="utf-8-sig").splitlines()) == 31


def test_rejected_traces_are_explained_and_fail_the_command(
    live_server: ServerProcess, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"trace_name": "x"}]))
    code, out = run(live_server, "traces", "put", str(bad))
    assert code == 1
    assert "trace_type" in out


def test_bad_list_options_show_the_server_error(live_server: ServerProcess) -> None:
    result = runner.invoke(
        app,
        [
            "traces",
            "list",
            "--limit",
            "500",
            "--endpoint",
            live_server.url,
            "--data-dir",
            str(live_server.data_dir),
        ],
    )
    assert result.exit_code == 1
    assert "CTS.0001" in result.stderr


def test_demo_loads_a_week_and_is_idempotent(live_server: ServerProcess) -> None:
    code, _ = run(live_server, "demo", "--count", "600")
    assert code == 0
    code, out = run(
        live_server,
        "traces",
        "list",
        "--from",
        "7d",
        "--service-type",
        "IAM",
        "--trace-name",
        "login",
        "--limit",
        "200",
        "--json",
    )
    logins = json.loads(out)["traces"]
    assert len({t["source_ip"] for t in logins}) >= 3
    code, out = run(live_server, "demo", "--count", "600")
    assert code == 0


def test_parse_time_forms() -> None:
    now = 1_800_000_000_000
    assert parse_time("2h", now) == now - 7_200_000
    assert parse_time("1700000000000", now) == 1_700_000_000_000
    assert parse_time("2023-11-14T22:13:20Z", now) == 1_700_000_000_000
    with pytest.raises(ValueError, match="not a time"):
        parse_time("soon", now)
