"""A server run as an ordinary user: its functions cannot read its data, yet import, write /tmp and connect.

The test runs the pool in a subprocess as ``nobody`` (the systemd unit runs OpenCTS as ``opencts``), so
every worker keeps that uid and only Landlock (``functions/landlock.py``) and the private /tmp of an
unprivileged namespace stand between a handler and the server's files. One data dir lies inside the
interpreter's prefix, a tree handlers must read (the rules go around it); another lies in /tmp (the
worker's own /tmp covers it). The same probe run unconfined reads both: the test can fail. Where no
namespace can be had, the worker writes only the directory the pool made for it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from opencts.functions import landlock
from opencts.testing.unprivileged import NOBODY, as_user

pytestmark = pytest.mark.skipif(landlock.abi_version() == 0, reason="this kernel has no Landlock")

SERVER = """
import asyncio, hashlib, io, json, sys, zipfile
from pathlib import Path
from opencts.config import Settings
from opencts.functions.runtime import FunctionPool, FunctionSpec
from opencts.functions.service import private_paths

config = json.loads(sys.argv[1])
OTHER = "def handler(event, context):\\n    return 'other'\\n"
PROBE = '''
import os

def attempt(path):
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").read(1)
        return "read"
    except OSError as error:
        return type(error).__name__

def handler(event, context):
    import obs
    import requests
    found = {path: attempt(path) for path in event["paths"]}
    with open("/tmp/probe.txt", "w") as out:
        out.write("written")
    try:
        os.kill(os.getppid(), 0)
        signalled = True
    except PermissionError:
        signalled = False
    return {
        "found": found,
        "uid": os.getuid(),
        "tmp": open("/tmp/probe.txt").read(),
        "tmp_listing": sorted(os.listdir("/tmp")),
        "http": requests.get(event["url"], timeout=5).text,
        "obs": obs.ObsClient.__name__,
        "signalled_server": signalled,
    }
'''


def spec_of(func_id, data):
    return FunctionSpec(func_id=func_id, func_urn="u", project_id="p", package="default", name=func_id,
                        version="latest", runtime="Python3.10", handler="index.handler", timeout_s=20,
                        memory_mb=256, code_digest=hashlib.sha512(data).hexdigest(), user_data={})


def zipped(source):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", source)
    return buffer.getvalue()


async def main():
    zips = {name: zipped(source) for name, source in (("other", OTHER), ("probe", PROBE))}
    by_digest = {hashlib.sha512(data).hexdigest(): data for data in zips.values()}

    async def load(spec):
        return by_digest[spec.code_digest]

    settings = Settings(data_dir=Path(config["data_dirs"][0]))
    hidden = private_paths(settings) + tuple(Path(path) for path in config["data_dirs"][1:])
    code_dir = Path(config["code_dir"])
    pool = FunctionPool(code_dir=code_dir, load_code=load, workers=2, max_memory_mb=512, concurrency=1,
                        queue_limit=1, idle_seconds=60, hidden=hidden, confine=config["confine"])
    try:
        other = spec_of("other", zips["other"])
        first = await pool.invoke(other, b"{}", request_id="o", credentials=None)
        assert first.status == "success", first
        other_code = str(code_dir / other.code_digest / "index.py")
        event = {"paths": config["paths"] + [other_code], "url": config["url"]}
        result = await pool.invoke(spec_of("probe", zips["probe"]), json.dumps(event).encode(),
                                   request_id="p", credentials=None)
    finally:
        await pool.close()
    print(json.dumps({"status": result.status, "result": result.result, "log": result.log,
                      "other_code": other_code}))

asyncio.run(main())
"""


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from the network"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _data_dir(parent: Path) -> Path:
    """A data dir as the server keeps it: master.key, the KMS key and a SQLite database, 0700, its own."""
    directory = parent / f"opencts-test-data-{uuid.uuid4().hex[:12]}"
    directory.mkdir(mode=0o700)
    (directory / "master.key").write_text("bWFzdGVyIGtleQ==\n")
    (directory / "kms-master.key").write_text("a21zIGtleQ==\n")
    with sqlite3.connect(directory / "opencts.db") as database:
        database.execute("create table secrets (value text)")
    if os.geteuid() == 0:
        for path in (directory, *directory.iterdir()):
            os.chown(path, NOBODY, NOBODY)
    return directory


@pytest.fixture
def data_dirs() -> Iterator[list[Path]]:
    # inside the interpreter's prefix (a tree every handler reads), and in /tmp
    inside_prefix = _data_dir(Path(sys.prefix))
    in_tmp = _data_dir(Path("/tmp"))
    try:
        yield [inside_prefix, in_tmp]
    finally:
        shutil.rmtree(inside_prefix)
        shutil.rmtree(in_tmp)


def _run(data_dirs: list[Path], url: str, *, confine: bool) -> dict[str, Any]:
    code_dir = Path("/tmp") / f"opencts-test-code-{uuid.uuid4().hex[:12]}"
    code_dir.mkdir(mode=0o700)
    if os.geteuid() == 0:
        os.chown(code_dir, NOBODY, NOBODY)
    paths = [str(d / name) for d in data_dirs for name in ("master.key", "kms-master.key", "opencts.db")]
    paths += [str(d) for d in data_dirs]
    # around the rules: through the root link of /proc, its own and another process's
    key = (data_dirs[0] / "master.key").relative_to("/")
    paths += [f"/proc/self/root/{key}", f"/proc/{os.getpid()}/root/{key}", "/proc/1/environ"]
    config = {
        "code_dir": str(code_dir),
        "data_dirs": [str(d) for d in data_dirs],
        "paths": paths,
        "url": url,
        "confine": confine,
    }
    try:
        done = subprocess.run(
            as_user([sys.executable, "-c", SERVER, json.dumps(config)]),
            capture_output=True,
            text=True,
            timeout=50,
            cwd="/",
        )
    finally:
        shutil.rmtree(code_dir, ignore_errors=True)
    assert done.returncode == 0, done.stderr
    output: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert output["status"] == "success", output
    value: dict[str, Any] = json.loads(output["result"])
    value["other_code"] = output["other_code"]
    return value


def test_a_function_of_an_unprivileged_server_cannot_read_its_data(
    data_dirs: list[Path], http_url: str
) -> None:
    value = _run(data_dirs, http_url, confine=True)
    assert value["uid"] == (NOBODY if os.geteuid() == 0 else os.geteuid()), "the worker kept the server's uid"
    assert value["found"], "the probe tried the paths"
    for path, outcome in value["found"].items():
        assert outcome in ("PermissionError", "FileNotFoundError"), (path, outcome)
    # the data dir inside the prefix is in view, and refused; the one in /tmp is covered by its own /tmp
    # (as is the first, when the checkout itself lies under /tmp, as a CI clone may)
    in_view = "FileNotFoundError" if data_dirs[0].is_relative_to("/tmp") else "PermissionError"
    assert value["found"][str(data_dirs[0] / "master.key")] == in_view
    assert value["found"][str(data_dirs[1] / "master.key")] == "FileNotFoundError"
    assert value["found"][value["other_code"]] in ("PermissionError", "FileNotFoundError")
    assert value["tmp"] == "written"
    assert value["tmp_listing"] == ["probe.txt"], "a /tmp of its own"
    assert value["http"] == "hello from the network"
    assert value["obs"] == "ObsClient"
    assert value["signalled_server"] is False, "signals are scoped to the worker"


def test_the_same_probe_unconfined_reads_the_data(data_dirs: list[Path], http_url: str) -> None:
    value = _run(data_dirs, http_url, confine=False)
    assert value["found"][str(data_dirs[0] / "master.key")] == "read"
    assert value["found"][str(data_dirs[1] / "opencts.db")] == "read"
    assert value["found"][value["other_code"]] == "read"
    assert value["signalled_server"] is True


def test_the_plan_goes_around_a_hidden_directory(tmp_path: Path) -> None:
    (tmp_path / "lib" / "data" / "keys").mkdir(parents=True)
    (tmp_path / "lib" / "data" / "keys" / "master.key").write_text("k")
    (tmp_path / "lib" / "data" / "public.txt").write_text("p")
    (tmp_path / "lib" / "modules").mkdir()
    (tmp_path / "lib" / "README").write_text("r")
    (tmp_path / "lib" / "link").symlink_to(tmp_path / "lib" / "data" / "keys")
    hidden = [str(tmp_path / "lib" / "data" / "keys")]
    rules = dict(landlock.plan([(str(tmp_path / "lib"), landlock.READ)], hidden))
    assert sorted(Path(path).relative_to(tmp_path).as_posix() for path in rules) == [
        "lib/README",
        "lib/data/public.txt",
        "lib/modules",
    ]
    inside = landlock.plan([(str(tmp_path / "lib" / "data" / "keys"), landlock.READ)], hidden)
    assert inside == [], "a tree inside a hidden one is not granted at all"


FALLBACK = """
import importlib.machinery, json, os, sys, types
worker = types.ModuleType("opencts_worker")
worker.__file__ = sys.argv[1]
importlib.machinery.SourceFileLoader("opencts_worker", sys.argv[1]).exec_module(worker)
config = json.loads(sys.argv[2])
spec = {"address_space_bytes": 2 << 30, "max_file_bytes": 1 << 30, "uid": None, "landlock": config["abi"],
        "hidden": [config["data_dir"]], "code_fd": os.open(config["code_dir"], os.O_RDONLY | os.O_DIRECTORY),
        "tmp_dir": config["tmp_dir"], "tmp_bytes": 0}
worker._confine(spec)  # tmp_bytes 0: no namespace, as where the kernel refuses one

def attempt(action):
    try:
        action()
        return "done"
    except OSError as error:
        return type(error).__name__

import tempfile
handle, name = tempfile.mkstemp()
print(json.dumps({
    "tmp_write": attempt(lambda: open("/tmp/opencts-fallback-probe", "w").close()),
    "tmp_list": attempt(lambda: os.listdir("/tmp")),
    "key": attempt(lambda: open(os.path.join(config["data_dir"], "master.key")).read()),
    "tempfile": os.path.dirname(name),
    "tmpdir": os.environ["TMPDIR"],
    "import": attempt(lambda: __import__("requests")),
}))
"""


def test_without_a_namespace_the_worker_writes_only_its_own_directory(data_dirs: list[Path]) -> None:
    from opencts.functions import _worker

    own = Path(tempfile.mkdtemp(prefix="opencts-worker-"))
    code = Path(tempfile.mkdtemp(prefix="opencts-test-code-"))
    if os.geteuid() == 0:
        os.chown(own, NOBODY, NOBODY)
        code.chmod(0o755)
    config = {
        "abi": landlock.abi_version(),
        "data_dir": str(data_dirs[1]),
        "code_dir": str(code),
        "tmp_dir": str(own),
    }
    try:
        done = subprocess.run(
            as_user([sys.executable, "-I", "-c", FALLBACK, _worker.__file__, json.dumps(config)]),
            capture_output=True,
            text=True,
            timeout=30,
            cwd="/",
        )
        assert done.returncode == 0, done.stderr
        value = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(own)
        shutil.rmtree(code)
    assert value["tmp_write"] == "PermissionError", "the host's /tmp is out of reach"
    assert value["tmp_list"] == "PermissionError"
    assert value["key"] == "PermissionError", "a data dir in /tmp stays closed without a private /tmp too"
    assert value["tempfile"] == value["tmpdir"] == str(own)
    assert value["import"] == "done"
    assert not Path("/tmp/opencts-fallback-probe").exists()
