"""``opencts serve`` as an operator starts it: a busy port, the migration logs, the banner's hints."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from opencts.testing.ports import free_port
from opencts.testing.waiting import wait_for

pytestmark = pytest.mark.slow
OPENCTS = str(Path(sys.executable).with_name("opencts"))


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("OPENCTS_") and k != "COLUMNS"}


@contextmanager
def serving(data_dir: Path, port: int, *extra: str) -> Iterator[list[str]]:
    """A server started as an operator would, healthy; yields the stderr lines it writes (a live list)."""
    args = [OPENCTS, "serve", "--data-dir", str(data_dir), "--bind", f"127.0.0.1:{port}", *extra]
    with subprocess.Popen(
        args, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as proc:
        lines: list[str] = []
        assert proc.stderr is not None
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)  # type: ignore[arg-type]
        reader.start()
        try:

            def healthy() -> bool:
                assert proc.poll() is None, "".join(lines)
                try:
                    return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(healthy, 60, "the server to answer /health", interval=0.1)
            yield lines
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            reader.join(timeout=10)


def test_a_port_in_use_is_one_clear_error_before_the_banner(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [OPENCTS, "serve", "--data-dir", str(tmp_path / "data"), "--bind", f"127.0.0.1:{port}"],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "already in use" in lines[0]
    assert "is starting at" not in result.stderr and "Traceback" not in result.stderr  # no banner


def test_migration_logs_are_quiet_unless_asked(tmp_path: Path) -> None:
    with serving(tmp_path / "quiet", free_port()) as lines:
        pass
    quiet = "".join(lines)
    assert "alembic" not in quiet and "Running upgrade" not in quiet
    assert "is starting at" in quiet  # it did start, at INFO, with its banner
    with serving(tmp_path / "verbose", free_port(), "--verbose") as lines:
        pass
    assert "Running upgrade" in "".join(lines)


def test_the_banners_hints_work_on_a_non_default_port(tmp_path: Path) -> None:
    port = free_port()
    with serving(tmp_path / "data with space", port, "--log-level", "warning") as lines:
        hints = [line.removeprefix("try:").strip() for line in lines if line.startswith("try:")]
        assert len(hints) == 2
        # the banner names the console, and the address it prints leads to its login page
        console_url = next(line.split("console:")[1].split()[0] for line in lines if "console:" in line)
        page = httpx.get(console_url, follow_redirects=True, timeout=10)
        assert page.status_code == 200 and 'name="password"' in page.text
        for hint in hints:
            args = shlex.split(hint)
            assert f"http://127.0.0.1:{port}" in args  # the hint says where the server is
            if args[1] == "demo":
                args.extend(["--count", "100"])
            # run as written, from elsewhere, with nothing in the environment pointing at the server
            result = subprocess.run(
                args, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120, check=False
            )
            assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("bind", ["nope", "127.0.0.1:http", "no-such-host.invalid:8080"])
def test_an_address_that_cannot_be_listened_on_is_one_line(tmp_path: Path, bind: str) -> None:
    result = subprocess.run(
        [OPENCTS, "serve", "--data-dir", str(tmp_path / "data"), "--bind", bind],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and "is starting at" not in result.stderr
