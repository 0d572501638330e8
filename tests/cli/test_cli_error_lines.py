"""Whatever goes wrong, the installed ``opencts`` says so in one line on stderr and exits non-zero."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from opencts.testing.peers import serving
from opencts.testing.ports import free_port
from opencts.testing.server import ServerProcess

pytestmark = pytest.mark.slow
OPENCTS = str(Path(sys.executable).with_name("opencts"))


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OPENCTS_")}
    return subprocess.run(
        [OPENCTS, *args], capture_output=True, text=True, env={**base, **(env or {})}, timeout=60, check=False
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for text in expected:
        assert text in lines[0]


def at(server: ServerProcess) -> tuple[str, ...]:
    return ("--endpoint", server.url, "--data-dir", str(server.data_dir))


def test_a_missing_file(live_server: ServerProcess, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.ndjson"
    assert_one_line_error(run("traces", "put", str(missing), *at(live_server)), str(missing), "No such file")


def test_a_file_in_an_unknown_format(live_server: ServerProcess, tmp_path: Path) -> None:
    path = tmp_path / "traces.xml"
    path.write_text("<traces><trace/></traces>")
    assert_one_line_error(run("traces", "put", str(path), *at(live_server)), "neither JSON nor NDJSON")


def test_an_unknown_export_format(live_server: ServerProcess, tmp_path: Path) -> None:
    target = tmp_path / "out.xml"
    result = run("traces", "export", "--format", "xml", "-o", str(target), *at(live_server))
    assert_one_line_error(result, "--format must be csv or ndjson")
    assert not target.exists()


@pytest.mark.parametrize("command", [("traces", "list"), ("traces", "export"), ("trackers", "list")])
def test_an_unreachable_server(live_server: ServerProcess, command: tuple[str, ...]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run(*command, "--endpoint", url, "--data-dir", str(live_server.data_dir))
    assert_one_line_error(result, f"cannot reach OpenCTS at {url}")


@pytest.mark.parametrize("url", ["not-a-url", "ftp://127.0.0.1/", "http://[::1"])
def test_a_bad_url(live_server: ServerProcess, url: str) -> None:
    result = run("traces", "list", "--endpoint", url, "--data-dir", str(live_server.data_dir))
    assert_one_line_error(result)


def test_a_4xx_answer(live_server: ServerProcess) -> None:
    result = run("traces", "list", "--limit", "500", *at(live_server))
    assert_one_line_error(result, "400 CTS.0001", "limit", "request id")
    result = run("traces", "export", "--from", "2h", "--to", "3h", *at(live_server))
    assert_one_line_error(result, "400 CTS.0001")


class _Broken(BaseHTTPRequestHandler):
    """A proxy in front of a broken service: 502 with an HTML page spread over several lines."""

    def _answer(self) -> None:
        body = b"<html>\n<body>\n<h1>502 Bad Gateway</h1>\n</body>\n</html>\n"
        self.send_response(502)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def broken_server() -> Iterator[str]:
    with serving(_Broken) as url:
        yield url


@pytest.mark.parametrize(
    "command",
    [("traces", "list"), ("traces", "export"), ("trackers", "list"), ("smn", "topics", "list")],
)
def test_a_5xx_answer(live_server: ServerProcess, broken_server: str, command: tuple[str, ...]) -> None:
    result = run(*command, "--endpoint", broken_server, "--data-dir", str(live_server.data_dir))
    assert_one_line_error(result, "502")


def test_a_5xx_answer_to_an_ingest(live_server: ServerProcess, broken_server: str, tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text('[{"trace_name": "x"}]')
    result = run(
        "traces", "put", str(path), "--endpoint", broken_server, "--data-dir", str(live_server.data_dir)
    )
    assert_one_line_error(result, "502")


def test_no_credentials(tmp_path: Path) -> None:
    assert_one_line_error(run("traces", "list", "--data-dir", str(tmp_path)), "no credentials")
