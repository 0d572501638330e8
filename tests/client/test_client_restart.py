"""An app killed with SIGKILL while OpenCTS is down: its spooled traces are sent by the next start. An app
that simply exits: its buffered traces are sent at interpreter exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from client_helpers import client_settings, stored
from opencts.client.settings import ClientSettings
from opencts.testing.server import ServerProcess

pytestmark = pytest.mark.slow

APP = Path(__file__).parent.parent / "client_spool_app.py"


def app_env(settings: ClientSettings) -> dict[str, str]:
    """The app's environment: its client configured only by ``OPENCTS_CLIENT_*`` variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCTS_")}
    env.update(
        {
            f"OPENCTS_CLIENT_{name.upper()}": str(value)
            for name, value in settings.model_dump(exclude={"secret_key"}).items()
            if value is not None
        }
    )
    env["OPENCTS_CLIENT_SECRET_KEY"] = settings.secret_key.get_secret_value()
    return env


def test_killed_app_restarted_delivers_its_spool(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        settings = client_settings(server, tmp_path / "spool", batch_max_traces=100)
        env = app_env(settings)
        server.stop()
        with subprocess.Popen(
            [sys.executable, str(APP), "record", "450"], stdout=subprocess.PIPE, env=env
        ) as app:
            try:
                assert app.stdout is not None
                before = orjson.loads(app.stdout.readline())
            finally:
                app.kill()  # SIGKILL: no atexit, no close
                app.wait(10)
        # 100 a batch: five, or more when the flusher sealed while the app was still recording
        assert before["recorded"] == 450 and before["pending_batches"] >= 5 and before["accepted"] == 0
        assert len(list((tmp_path / "spool").glob("*.batch"))) == before["pending_batches"]

        server.start()
        out = subprocess.run(
            [sys.executable, str(APP), "deliver"], capture_output=True, env=env, timeout=60, check=True
        )
        after = orjson.loads(out.stdout)
        assert after["accepted"] == 450 and after["pending_batches"] == 0
        assert stored(server, settings.service_type) == 450
        assert not list((tmp_path / "spool").glob("*.batch"))
    finally:
        server.stop()


def test_an_app_that_just_exits_delivers_at_exit(live_server: ServerProcess, tmp_path: Path) -> None:
    """Nothing sealed before the exit (a batch's worth never gathers, the interval never comes) and the
    app calls neither flush nor close: the client's exit hook seals and sends what it buffered."""
    settings = client_settings(live_server, tmp_path / "spool", batch_max_traces=1_000, flush_interval=3600)
    out = subprocess.run(
        [sys.executable, str(APP), "exit", "50"],
        capture_output=True,
        env=app_env(settings),
        timeout=60,
        check=True,
    )
    before = orjson.loads(out.stdout)
    assert before["recorded"] == before["buffered"] == 50 and before["accepted"] == 0
    assert stored(live_server, settings.service_type) == 50
    assert not list((tmp_path / "spool").glob("*.batch"))
