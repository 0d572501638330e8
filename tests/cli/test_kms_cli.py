"""``opencts kms``: a key's whole life through the KMS API, against a real server."""

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


def test_key_lifecycle_from_the_shell(live_server: ServerProcess) -> None:
    alias = f"archive-{uuid.uuid4().hex[:8]}"
    code, out, err = run(live_server, "kms", "create", alias, "--description", "trace files")
    assert code == 0, err
    key_id = out.strip()
    assert len(key_id) == 36

    code, out, _ = run(live_server, "kms", "list", "--json")
    mine = {k["key_id"]: k for k in json.loads(out)["keys"]}[key_id]
    assert mine["key_alias"] == alias and mine["key_state"] == "2" and mine["key_version"] == 1
    code, out, _ = run(live_server, "kms", "list")
    assert code == 0 and alias in out and "enabled" in out

    code, out, err = run(live_server, "kms", "disable", alias)  # by alias
    assert code == 0 and f"disabled {key_id}" in out, err
    code, out, _ = run(live_server, "kms", "list", "--state", "disabled", "--json")
    assert key_id in [k["key_id"] for k in json.loads(out)["keys"]]
    code, out, _ = run(live_server, "kms", "enable", key_id)  # by id
    assert code == 0 and f"enabled {key_id}" in out

    code, out, _ = run(live_server, "kms", "rotate", alias)
    assert code == 0 and out.strip() == f"rotated {key_id}: version 2"
    code, out, _ = run(live_server, "kms", "show", alias)
    assert json.loads(out)["key_version"] == 2 and json.loads(out)["key_description"] == "trace files"


def test_errors_are_one_line(live_server: ServerProcess) -> None:
    code, _, err = run(live_server, "kms", "disable", "no-such-key")
    assert code == 1 and "no key 'no-such-key'" in err
    code, _, err = run(live_server, "kms", "create", "bad alias")
    assert code == 1 and "key_alias" in err
    code, _, err = run(live_server, "kms", "list", "--state", "sleeping")
    assert code == 1 and "--state" in err
