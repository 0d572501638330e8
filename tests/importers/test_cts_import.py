"""``opencts import cts``: trace files in the CTS layout, as OpenCTS's transfer writes them."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from cts_helpers import TraceFactory
from opencts.archive import encoding, layout
from opencts.cli.main import app
from opencts.clock import now_ms
from opencts.importers.cts import to_trace
from opencts.testing.server import ServerProcess
from opencts.traces.ingest import prepare
from opencts.traces.submitter import SELF

runner = CliRunner()
OTHER_PROJECT = "0123456789abcdef0123456789abcdef"


def stored_bodies(traces: list[dict[str, Any]]) -> list[bytes]:
    """The bodies another OpenCTS stored for these traces (record_time, project_id, submitter...)."""
    batch = prepare(
        traces, project_id=OTHER_PROJECT, now=now_ms(), retention_ms=7 * 86_400_000, submitter=SELF
    )
    return [row.body for row in batch.rows]


def write_trace_file(
    root: Path, bodies: list[bytes], service: str, compress: layout.Compress = "gzip"
) -> Path:
    key = layout.trace_file_key(
        region="eu-de",
        project_id=OTHER_PROJECT,
        tracker="system",
        service=service,
        prefix="audit",
        at_ms=now_ms(),
        random16=uuid.uuid4().hex[:16],
        compress=compress,
    )
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encoding.encode(bodies, compress))
    return path


def run(server: ServerProcess, *args: str) -> tuple[int, str]:
    result = runner.invoke(
        app, [*args, "--endpoint", server.url, "--data-dir", str(server.data_dir)], env={"COLUMNS": "200"}
    )
    return result.exit_code, result.stdout


@pytest.mark.slow
def test_trace_files_import_once(
    live_server: ServerProcess, make_trace: TraceFactory, tmp_path: Path
) -> None:
    ecs = [make_trace(user={"id": "u1", "name": "cts-import"}) for _ in range(30)]
    iam = [make_trace(service_type="IAM", trace_name="login", resource_type="user") for _ in range(5)]
    bucket = tmp_path / "bucket"
    write_trace_file(bucket, stored_bodies(ecs), "ECS")
    write_trace_file(bucket, stored_bodies(iam), "IAM", compress="json")
    # what a bucket also holds: an encrypted trace file and a digest, neither imported
    encrypted = write_trace_file(bucket, stored_bodies(iam[:1]), "IAM")
    encrypted.rename(encrypted.with_name(encrypted.name + ".enc"))
    digest = bucket / "CloudTraces/eu-de/2026/1/2/system/Digest/x_CloudTrace-Digest_eu-de-p_2026.json.gz"
    digest.parent.mkdir(parents=True)
    digest.write_bytes(b"{}")
    code, out = run(live_server, "import", "cts", str(bucket))
    assert code == 0, out
    assert "2 files, imported 35, already there 0" in out and "skipped 2 files" in out, out
    code, out = run(live_server, "import", "cts", str(bucket))
    assert code == 0 and "imported 0, already there 35" in out, out
    with live_server.client() as client:
        resp = client.get(
            f"/v3/{live_server.creds.project_id}/traces", params={"trace_id": ecs[0]["trace_id"]}
        )
    [trace] = resp.json()["traces"]
    assert trace["resource_id"] == ecs[0]["resource_id"] and trace["user"]["name"] == "cts-import"
    assert trace["project_id"] == live_server.creds.project_id  # the project imported into
    assert trace["submitter"]["type"] == "user"  # whoever ran the import, not the original service


def test_a_cts_trace_keeps_its_fields_and_drops_what_the_service_sets() -> None:
    stored = {
        "trace_id": "t-1",
        "trace_name": "createServer",
        "trace_type": "ApiCall",
        "trace_rating": "normal",
        "time": "1733400000000",
        "record_time": 1733400000500,
        "service_type": "ECS",
        "project_id": "p",
        "submitter": {"type": "service"},
        "trace_status": "normal",  # a field of some CTS builds that the trace structure has not
        "user": {"name": "bob", "domain": {"id": "d", "extra": 1}, "unknown": 2},
    }
    trace = to_trace(stored)
    assert trace == {
        "trace_id": "t-1",
        "trace_name": "createServer",
        "trace_type": "ApiCall",
        "trace_rating": "normal",
        "time": 1733400000000,
        "service_type": "ECS",
        "user": {"name": "bob", "domain": {"id": "d"}},
    }
    without_id = {k: v for k, v in stored.items() if k != "trace_id"}
    assert to_trace(without_id)["trace_id"] == to_trace(dict(without_id))["trace_id"]
    assert orjson.loads(orjson.dumps(trace)) == trace
