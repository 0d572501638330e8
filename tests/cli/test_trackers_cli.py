"""``opencts trackers``: a data tracker's whole life through the CTS v3 API, against a real server."""

from __future__ import annotations

import json
import uuid

import pytest
from typer.testing import CliRunner

from opencts.cli.main import app
from opencts.testing.server import ServerProcess

pytestmark = pytest.mark.slow
runner = CliRunner()


def run(server: ServerProcess, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--endpoint", server.url, "--data-dir", str(server.data_dir)])
    return result.exit_code, result.stdout, result.stderr


def listed(server: ServerProcess) -> dict[str, dict[str, object]]:
    code, out, err = run(server, "trackers", "list", "--json")
    assert code == 0, err
    return {t["tracker_name"]: t for t in json.loads(out)["trackers"]}


def test_data_tracker_lifecycle(live_server: ServerProcess) -> None:
    name = f"audit-{uuid.uuid4().hex[:8]}"
    code, out, err = run(
        live_server, "trackers", "create", name, "--bucket", "cli-bucket", "--event", "write"
    )
    assert code == 0, err
    assert f"created data tracker {name}" in out
    tracker = listed(live_server)[name]
    assert tracker["tracker_type"] == "data" and tracker["status"] == "enabled"
    assert tracker["data_bucket"] == {
        "data_bucket_name": "cli-bucket",
        "search_enabled": True,
        "data_event": ["WRITE"],
    }

    code, out, _ = run(live_server, "trackers", "list")
    assert code == 0 and name in out and "cli-bucket" in out and "system" in out
    code, out, _ = run(live_server, "trackers", "show", name, "--json")
    assert code == 0 and json.loads(out)["id"] == tracker["id"]

    code, _, err = run(
        live_server, "trackers", "update", name, "--event", "READ", "--event", "WRITE", "--lts"
    )
    assert code == 0, err
    tracker = listed(live_server)[name]
    assert tracker["data_bucket"]["data_event"] == ["READ", "WRITE"]  # type: ignore[index]
    assert tracker["lts"]["is_lts_enabled"] is True  # type: ignore[index]

    assert run(live_server, "trackers", "disable", name)[0] == 0
    assert listed(live_server)[name]["status"] == "disabled"
    assert run(live_server, "trackers", "enable", name)[0] == 0
    assert listed(live_server)[name]["status"] == "enabled"

    code, out, err = run(live_server, "trackers", "delete", name, "--yes")
    assert code == 0, err
    assert name not in listed(live_server)
    assert "system" in listed(live_server)  # deleting one data tracker leaves the others alone


def test_tracker_errors_are_one_line(live_server: ServerProcess) -> None:
    code, _, err = run(live_server, "trackers", "show", "no-such-tracker")
    assert code == 1 and "no tracker named 'no-such-tracker'" in err and len(err.splitlines()) == 1
    code, _, err = run(live_server, "trackers", "create", "system", "--bucket", "b")
    assert code == 1 and "CTS.0001" in err and len(err.splitlines()) == 1
    code, _, err = run(live_server, "trackers", "update", "system")
    assert code == 1 and "nothing to change" in err
    code, _, err = run(
        live_server, "trackers", "create", "x-bad-event", "--bucket", "b", "--event", "EXECUTE"
    )
    assert code == 1 and "READ or WRITE" in err
