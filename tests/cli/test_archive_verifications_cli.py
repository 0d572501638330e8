"""``opencts archive verifications run|list|show`` against a live server: a validated archive verifies
(exit 0), a file changed in the bucket fails and is named (exit 1), and a tracker that does not exist is an
error on one line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opencts.archive.storage import LocalStore
from opencts.cli.main import app
from opencts.clock import HOUR_MS, now_ms
from opencts.consumers import ConsumerRunner
from opencts.ledger.consumer import LedgerConsumer
from opencts.testing.server import RunningServer, running_server

pytestmark = pytest.mark.slow
runner = CliRunner()


async def run(server: RunningServer, data_dir: Path, *args: str) -> tuple[int, str, str]:
    """The CLI in a thread: the server answers it from this test's event loop."""
    argv = ["archive", "verifications", *args, "--endpoint", server.url, "--data-dir", str(data_dir)]
    result = await asyncio.to_thread(runner.invoke, app, argv)
    return result.exit_code, result.stdout, result.stderr


async def test_run_list_and_show_from_the_shell(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with running_server(data_dir, ingest_workers=0, archive_verify_interval=0) as server:
        services = server.app.state.services
        assert isinstance(services.storage, LocalStore)
        services.storage.create_bucket("cli-sealed")
        obs = {"bucket_name": "cli-sealed"}
        body = {
            "tracker_type": "system",
            "tracker_name": "system",
            "obs_info": obs,
            "is_support_validate": True,
        }
        assert (await server.client.put(f"/v3/{server.project}/tracker", json=body)).status_code == 200
        start = now_ms()
        await services.digests.run_once()
        login = {
            "trace_name": "login",
            "trace_type": "ConsoleAction",
            "service_type": "IAM",
            "resource_type": "user",
        }
        traces = [{**login, "time": now_ms()} for _ in range(7)]
        assert (await server.client.post(f"/v3/{server.project}/traces", json={"traces": traces})).is_success
        await services.transfer.drain()
        await ConsumerRunner(services.db, LedgerConsumer(services.db)).drain()
        services.digests.clock = lambda: start + 2 * HOUR_MS
        await services.digests.run_once()

        code, out, err = await run(server, data_dir, "run", "--tracker", "system")
        assert code == 0, err
        assert out.startswith("verified: tracker system") and "nothing altered" in out

        bucket = services.storage.root / "cli-sealed"
        victim = next(bucket.rglob("CloudTrace_*.json.gz"))
        victim.write_bytes(b"\x1f\x8b" + victim.read_bytes()[2:-4])
        code, out, err = await run(server, data_dir, "run", "--tracker", "system", "--json")
        assert code == 1, err
        failed = json.loads(out)
        assert failed["status"] == "failed"
        assert [(f["problem"], f["key"]) for f in failed["findings"]] == [
            ("hash value doesn't match", victim.relative_to(bucket).as_posix())
        ]

        code, out, err = await run(server, data_dir, "show", failed["id"])
        assert code == 0, err
        assert "FAILED: tracker system, 1 failure(s)" in out and "hash value doesn't match" in out

        code, out, err = await run(server, data_dir, "list", "--json")
        assert code == 0, err
        assert [v["status"] for v in json.loads(out)["verifications"]] == ["failed", "verified"]
        code, out, err = await run(server, data_dir, "list")
        assert code == 0 and "2 verification(s)" in out

        code, out, err = await run(server, data_dir, "run", "--tracker", "nope")
        assert code == 1 and err.startswith("error:") and "tracker nope does not exist" in err
        code, out, err = await run(server, data_dir, "run", "--tracker", "system", "--no-wait", "--json")
        assert code == 0 and json.loads(out)["status"] == "queued"
