"""The wheel and sdist a release ships: built by ``python -m build``, installed into a fresh virtualenv,
started with ``opencts serve`` far from any checkout, answering ``/health``.

What only a checkout has (an editable install, ``src/`` on the path, files left out of the wheel such as
the migrations' template or the console's assets) is not there to hide a broken package. Dependencies are
installed at the versions of ``requirements.lock`` (as constraints), through uv so a cached run is quick.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import httpx
import pytest

from opencts.testing.ports import free_port
from opencts.testing.waiting import wait_for

pytestmark = pytest.mark.packaging
ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).with_name("uv")


def run(*args: str | Path, cwd: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCTS_", "VIRTUAL_ENV"))}
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{args}:\n{done.stdout}\n{done.stderr}"


def test_the_wheel_installs_into_a_fresh_virtualenv_and_serves(tmp_path: Path) -> None:
    if shutil.which("uv") is None and not UV.exists():
        pytest.skip("uv is not installed")
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--installer", "uv", "--outdir", dist, ROOT, cwd=tmp_path)
    [wheel] = dist.glob("opencts-*.whl")
    [sdist] = dist.glob("opencts-*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    migrations = [n for n in names if n.startswith("opencts/store/migrations/versions/")]
    assert "opencts/store/migrations/script.py.mako" in names and len(migrations) >= 19
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tests/", "src/"))]
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[-1] for m in tar.getmembers()}
    assert {"pyproject.toml", "README.md", "src/opencts/__init__.py"} <= members
    assert not [m for m in members if m.startswith((".venv/", "data/"))]

    venv = tmp_path / "venv"
    run(UV, "venv", "--python", sys.executable, venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(UV, "pip", "install", "--python", python, wheel, "-c", ROOT / "requirements.lock", cwd=tmp_path)

    away = tmp_path / "elsewhere"
    away.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCTS_", "PYTHONPATH"))}
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [venv / "bin" / "opencts", "serve", "--data-dir", "data", "--bind", f"127.0.0.1:{port}"],
        cwd=away,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def healthy() -> bool:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, 60, "the installed server to answer /health")
        origin = subprocess.run(
            [python, "-c", "import opencts; print(opencts.__file__)"], capture_output=True, text=True
        ).stdout
        assert str(venv) in origin and str(ROOT) not in origin, origin
        assert (away / "data" / "opencts.db").exists()
    finally:
        server.terminate()
        server.wait(20)
        log.close()
