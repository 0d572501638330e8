"""What the CLI prints fits where it goes: piped output is never wrapped, tables fit the terminal's width."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cts_helpers import TraceFactory
from opencts.cli.common import Column, fit_table
from opencts.cli.main import app
from opencts.testing.server import ServerProcess

pytestmark = pytest.mark.slow
runner = CliRunner()
OPENCTS = str(Path(sys.executable).with_name("opencts"))


def cli(server: ServerProcess, *args: str, columns: int | None = None) -> subprocess.CompletedProcess[str]:
    """The installed ``opencts`` with its standard output captured by a pipe, as a script would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCTS_") and k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run(
        [OPENCTS, *args, "--endpoint", server.url, "--data-dir", str(server.data_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_a_captured_urn_is_one_line(live_server: ServerProcess) -> None:
    name = "security-alarms-for-the-production-landing-zone-" + uuid.uuid4().hex
    made = cli(live_server, "smn", "topics", "create", name)
    assert made.returncode == 0, made.stderr
    urn = made.stdout.removesuffix("\n")
    assert "\n" not in urn
    assert urn.startswith("urn:smn:") and urn.endswith(name)
    # the same from a listing piped to another program: the URN is on one line, whole
    listed = cli(live_server, "smn", "topics", "list", "--name", name)
    assert listed.returncode == 0, listed.stderr
    assert any(urn in line for line in listed.stdout.splitlines())


@pytest.fixture
def wide_traces(live_server: ServerProcess, make_trace: TraceFactory, tmp_path: Path) -> str:
    """Traces with long names, by one user of this module only."""
    user = f"width-{uuid.uuid4().hex[:8]}"
    traces = [
        make_trace(
            user={"name": user},
            trace_name="deleteSecurityGroupRuleWithAVeryLongName",
            resource_type="securityGroupRule",
            resource_name=f"sg-rule-for-the-payments-production-cluster-{n}",
            source_ip="10.20.30.40",
            trace_rating="incident",
        )
        for n in range(3)
    ]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(traces))
    result = runner.invoke(
        app,
        ["traces", "put", str(path), "--endpoint", live_server.url, "--data-dir", str(live_server.data_dir)],
    )
    assert result.exit_code == 0, result.output
    return user


def test_trace_table_fits_80_columns_by_dropping_the_detail(
    live_server: ServerProcess, wide_traces: str
) -> None:
    out = cli(live_server, "traces", "list", "--user", wide_traces, columns=80)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if "Time (UTC)" in line)
    # who, what, when and the verdict stay; where from and the detail go
    for kept in ("Time (UTC)", "Trace", "Service", "Resource", "User", "Rating"):
        assert kept in header
    for dropped in ("Resource type", "Source IP", "Code", "Submitter"):
        assert dropped not in header
    rows = [line for line in lines if "incident" in line]
    assert len(rows) == 3  # every row is one line: nothing wraps, the rating is whole
    assert all("ECS" in row for row in rows)
    assert all(wide_traces in row or "…" in row for row in rows)


def test_trace_table_on_a_wide_terminal_keeps_every_column_whole(
    live_server: ServerProcess, wide_traces: str
) -> None:
    out = cli(live_server, "traces", "list", "--user", wide_traces, columns=240)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert max(len(line) for line in lines) <= 240
    header = next(line for line in lines if "Time (UTC)" in line)
    for column in ("Resource type", "Source IP", "Code", "Rating", "Submitter"):
        assert column in header
    assert "…" not in out.stdout
    assert sum("sg-rule-for-the-payments-production-cluster-" in line for line in lines) == 3
    assert sum("admin (" in line for line in lines) == 3  # who submitted them: the CLI's access key


@pytest.mark.parametrize(
    ("command", "whole"),
    [
        (("iam", "users", "list"), ["admin", "Enabled"]),
        (("iam", "credentials", "list"), ["{access_key}", "active"]),
        (("iam", "roles"), ["Tenant Administrator", "CTS ReadOnlyAccess"]),
        (("trackers", "list"), ["system", "enabled"]),
        (("smn", "deliveries"), []),
        (("notifications", "list"), []),
    ],
)
def test_every_listing_fits_80_columns(
    live_server: ServerProcess, command: tuple[str, ...], whole: list[str]
) -> None:
    out = cli(live_server, *command, columns=80)
    assert out.returncode == 0, out.stderr
    assert max((len(line) for line in out.stdout.splitlines()), default=0) <= 80
    for value in whole:  # what people read or copy from these tables is never cut
        assert value.format(access_key=live_server.creds.access_key) in out.stdout


def test_fit_table_shortens_only_the_columns_that_may_be() -> None:
    columns = (Column("Id"), Column("Text", shrink=8), Column("Extra", drop=1))
    rows = [["0123456789abcdef", "x" * 100, "detail"]]
    console = Console(width=60, record=True, file=io.StringIO())
    console.print(fit_table(columns, rows, width=60))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 60
    assert "0123456789abcdef" in text  # the id is never cut
    assert "Extra" in text  # there was room for it once the text was shortened
    assert "…" in text


def test_fit_table_drops_the_least_important_column_first() -> None:
    columns = (Column("Id"), Column("Text", shrink=30), Column("Extra", drop=2), Column("More", drop=1))
    rows = [["0123456789abcdef", "y" * 30, "detail", "more"]]
    console = Console(width=60, record=True, file=io.StringIO())
    console.print(fit_table(columns, rows, width=60))
    text = console.export_text()
    assert "More" in text and "Extra" not in text
    assert "y" * 30 in text
