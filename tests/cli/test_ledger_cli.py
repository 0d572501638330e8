"""``opencts ledger`` and ``opencts archive keys`` against the shared server process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cts_helpers import TraceFactory
from opencts.archive.signing_keys import load_published
from opencts.cli.main import app
from opencts.testing.server import ServerProcess
from opencts.testing.waiting import wait_for

pytestmark = pytest.mark.slow
runner = CliRunner()


def run(server: ServerProcess, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(
        app, [*args, "--endpoint", server.url, "--data-dir", str(server.data_dir)], env={"COLUMNS": "200"}
    )
    return result.exit_code, result.stdout, result.stderr


def test_prove_checkpoint_consistency_and_keys(
    live_server: ServerProcess, make_trace: TraceFactory, tmp_path: Path
) -> None:
    traces = [make_trace() for _ in range(3)]
    source = tmp_path / "t.json"
    source.write_text(json.dumps(traces))
    assert run(live_server, "traces", "put", str(source))[0] == 0

    # the server's ledger consumer appends within a poll
    def prove() -> str:
        code, out, _ = run(live_server, "ledger", "prove", traces[2]["trace_id"])
        return out if code == 0 else ""

    assert wait_for(prove, what="a verified proof").startswith("verified: trace ")
    code, note, _ = run(live_server, "ledger", "checkpoint")
    assert code == 0 and "\n\n\u2014 opencts." in note
    saved = tmp_path / "old.note"
    saved.write_text(note)
    more = tmp_path / "more.json"
    more.write_text(json.dumps([make_trace()]))
    assert run(live_server, "traces", "put", str(more))[0] == 0
    code, out, _ = run(live_server, "ledger", "consistency", "--from", str(saved))
    assert code == 0 and "verified: the tree of size" in out
    saved.write_text(note.replace("\n\n", "\nx\n\n", 1))  # a damaged note: its signature fails
    code, _, error = run(live_server, "ledger", "consistency", "--from", str(saved))
    assert code == 1 and "not signed by a published key" in error

    keys_file = tmp_path / "keys.json"
    assert run(live_server, "archive", "keys", "--output", str(keys_file))[0] == 0
    assert len(load_published(keys_file)) >= 1
    code, out, _ = run(live_server, "archive", "keys", "rotate")
    assert code == 0 and out.startswith("current signing key: ")
