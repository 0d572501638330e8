"""``opencts config check`` and the start that the same check stops; ``serve`` logging JSON lines,
warning about unknown variables, and serving /metrics on its own address."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from opencts.cli.main import app
from opencts.config import Settings
from opencts.config_check import ConfigError, effective, load_settings, unknown_variables
from opencts.testing.ports import free_port
from opencts.testing.waiting import wait_for

OPENCTS = str(Path(sys.executable).with_name("opencts"))
runner = CliRunner()


def test_check_prints_the_effective_configuration_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENCTS_RETENTION_DAYS", "30")
    monkeypatch.setenv("OPENCTS_METRICS_TOKEN", "scrape-secret-1")
    monkeypatch.setenv("OPENCTS_DATABASE_URL", "postgresql://ops:db-password-2@127.0.0.1/opencts")
    monkeypatch.setenv("OPENCTS_RETENTON_DAYS", "9")  # a typo
    monkeypatch.setenv("OPENCTS_CLIENT_TIMEOUT", "5")  # the client library's
    monkeypatch.setenv("OPENCTS_ACCESS_KEY", "AK")  # the CLI's
    result = runner.invoke(app, ["config", "check", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert lines["OPENCTS_RETENTION_DAYS"].split()[1:] == ["30", "(environment)"]
    assert lines["OPENCTS_DATA_DIR"].split()[1:] == [str(tmp_path), "(option)"]
    assert lines["OPENCTS_LOG_FORMAT"].split()[1:] == ["text", "(default)"]
    assert lines["OPENCTS_METRICS_TOKEN"].split()[1] == "***"
    assert "db-password-2" not in result.output and "scrape-secret-1" not in result.output
    assert "postgresql://ops:***@127.0.0.1/opencts" in lines["OPENCTS_DATABASE_URL"]
    assert set(lines) >= {f"OPENCTS_{name.upper()}" for name in Settings.model_fields}
    assert "OPENCTS_RETENTON_DAYS is set but is no OpenCTS setting" in result.stderr
    assert "OPENCTS_CLIENT_TIMEOUT" not in result.stderr and "OPENCTS_ACCESS_KEY" not in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        (
            "OPENCTS_RETENTION_DAYS",
            "0",
            "OPENCTS_RETENTION_DAYS=0: Input should be greater than or equal to 1",
        ),
        ("OPENCTS_LOG_FORMAT", "xml", "OPENCTS_LOG_FORMAT=xml: Input should be 'text' or 'json'"),
        ("OPENCTS_METRICS_ADDRESS", "9100", "OPENCTS_METRICS_ADDRESS=9100: bind must be HOST:PORT"),
        ("OPENCTS_SMN_CONCURRENCY", "lots", "OPENCTS_SMN_CONCURRENCY=lots: Input should be a valid integer"),
        ("OPENCTS_METRICS_ENABLED", "perhaps", "OPENCTS_METRICS_ENABLED=perhaps: Input should be a valid"),
    ],
)
def test_a_bad_value_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(f"invalid setting: {says}")
    assert "\n" not in str(caught.value)
    result = runner.invoke(app, ["config", "check"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"error: {caught.value}"]


def test_a_rule_over_two_settings_names_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENCTS_SMN_LEASE_SECONDS", "1")
    with pytest.raises(ConfigError, match="OPENCTS_SMN_LEASE_SECONDS must be longer"):
        load_settings()


def test_unknown_variables_and_masking() -> None:
    env = {"OPENCTS_BIND": "x", "OPENCTS_CLIENT_RETRIES": "3", "OPENCTS_BIDN": "y", "HOME": "/"}
    assert unknown_variables(env) == ["OPENCTS_BIDN"]
    rows = {row.variable: row for row in effective(load_settings({"admin_password": "hunter2-long"}), env)}
    assert rows["OPENCTS_ADMIN_PASSWORD"].value == "***"
    assert rows["OPENCTS_BIND"].source == "environment"
    assert rows["OPENCTS_SMTP_PASSWORD"].value == "(unset)"


@pytest.mark.slow
def test_serve_refuses_a_bad_value_and_logs_json(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCTS_") and k != "COLUMNS"}
    args = [OPENCTS, "serve", "--data-dir", str(tmp_path / "data")]
    bad = subprocess.run(
        [*args, "--bind", "127.0.0.1:1"],
        env={**env, "OPENCTS_READY_STUCK_INTERVALS": "0"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stderr.splitlines() == [
        "error: invalid setting: OPENCTS_READY_STUCK_INTERVALS=0: Input should be greater than or equal to 1"
    ]

    port, metrics_port = free_port(), free_port()
    env |= {
        "OPENCTS_LOG_FORMAT": "json",
        "OPENCTS_METRICS_ADDRESS": f"127.0.0.1:{metrics_port}",
        "OPENCTS_METRICS_TOKEN": "scrape-secret-3",
        "OPENCTS_RETENTON_DAYS": "9",
    }
    with subprocess.Popen(
        [*args, "--bind", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:

            def ready() -> bool:
                assert proc.poll() is None
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(ready, 60, "the server to be ready", interval=0.1)
            scrape = httpx.get(
                f"http://127.0.0.1:{metrics_port}/metrics",
                headers={"Authorization": "Bearer scrape-secret-3"},
            )
            assert scrape.status_code == 200
            assert "opencts_consumer_lag_traces" in scrape.text
            health = httpx.get(f"http://127.0.0.1:{port}/health")
        finally:
            proc.terminate()
            _, stderr = proc.communicate(timeout=30)
    records = [orjson.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert records, stderr
    assert any("OPENCTS_RETENTON_DAYS is set but is no OpenCTS setting" in r["message"] for r in records)
    access = [r for r in records if r["logger"] == "opencts.access" and r.get("route") == "/health"]
    assert access and access[-1]["request_id"] == health.headers["x-request-id"]
    assert access[-1]["status"] == 200
    assert "scrape-secret-3" not in stderr
