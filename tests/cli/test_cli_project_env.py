"""``OPENCTS_PROJECT_ID`` alone picks another project for the data dir's key; half a key is refused."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Connection
from typer.testing import CliRunner

from cts_helpers import TraceFactory
from opencts.cli.main import app
from opencts.iam import projects
from opencts.store import Database
from opencts.testing.server import ServerProcess
from opencts.trackers.repository import create_system_tracker

pytestmark = pytest.mark.slow
runner = CliRunner()


def run(server: ServerProcess, *args: str, env: dict[str, str]) -> tuple[int, str, str]:
    result = runner.invoke(
        app, [*args, "--endpoint", server.url, "--data-dir", str(server.data_dir)], env=env
    )
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def second_project(live_server: ServerProcess) -> str:
    db = Database(f"sqlite:///{live_server.data_dir / 'opencts.db'}")
    try:
        name = f"cli-{uuid.uuid4().hex[:8]}"
        domain_id = live_server.creds.domain_id

        def create(conn: Connection) -> projects.Project:
            # as POST /v3/projects does: the project with its management tracker
            project = projects.create_project(conn, domain_id=domain_id, name=name)
            create_system_tracker(conn, project_id=project.id, domain_id=domain_id)
            return project

        project = db.write_sync(create)
    finally:
        db.close()
    return project.id


def test_project_id_alone_is_honoured(
    live_server: ServerProcess, second_project: str, make_trace: TraceFactory, tmp_path: Path
) -> None:
    user = f"proj-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "t.json"
    path.write_text(json.dumps([make_trace(user={"name": user})]))
    env = {"OPENCTS_PROJECT_ID": second_project}
    code, out, err = run(live_server, "traces", "put", str(path), env=env)
    assert code == 0, out + err
    code, out, _ = run(live_server, "traces", "list", "--user", user, "--json", env=env)
    assert code == 0 and len(json.loads(out)["traces"]) == 1
    # the trace is in that project, not in the data dir's
    code, out, _ = run(live_server, "traces", "list", "--user", user, "--json", env={})
    assert code == 0 and json.loads(out)["traces"] == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OPENCTS_ACCESS_KEY": "AK" * 10}, "OPENCTS_SECRET_KEY is not"),
        ({"OPENCTS_SECRET_KEY": "sk"}, "OPENCTS_ACCESS_KEY is not"),
        ({"OPENCTS_ACCESS_KEY": "AK" * 10, "OPENCTS_SECRET_KEY": "sk"}, "need OPENCTS_PROJECT_ID"),
    ],
)
def test_half_an_identity_is_refused(live_server: ServerProcess, env: dict[str, str], message: str) -> None:
    code, out, err = run(live_server, "traces", "list", env=env)
    assert code == 1
    assert message in err
    assert len(err.splitlines()) == 1
