"""The benchmarks' servers and data dirs: ``opencts serve`` via :mod:`opencts.testing.server`, scratch
directories under ``bench-data/`` (git-ignored, on the repository's disk), and a data dir bootstrapped
exactly as a first start makes it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
from _measure import console

from opencts.config import Settings
from opencts.iam.bootstrap import BootstrapCredentials, read_credentials
from opencts.testing.server import ServerProcess

REPO = Path(__file__).resolve().parent.parent
BENCH_DATA = REPO / "bench-data"


def bench_server(
    data_dir: Path, env: dict[str, str] | None = None, *, timeout: float = 120.0
) -> ServerProcess:
    """``opencts serve`` on ``data_dir``, healthy; a large log can take a while to open."""
    return ServerProcess(data_dir, env, log_path=data_dir / "server.log").start(timeout)


def scratch_dir(prefix: str, root: Path = BENCH_DATA) -> Path:
    """A fresh directory under ``root`` (default ``bench-data/``, on the repository's disk); the caller
    removes it."""
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


def remove_dir(path: Path) -> None:
    if path.resolve().is_relative_to(BENCH_DATA.resolve()):
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def scratch_space(prefix: str, *, keep: bool = False, root: Path = BENCH_DATA) -> Iterator[Path]:
    """A fresh directory under ``root``, removed afterwards unless ``keep`` (the ``--keep`` option)."""
    path = scratch_dir(prefix, root)
    try:
        yield path
    finally:
        if keep:
            console.print(f"kept {path}")
        else:
            remove_dir(path)


def bootstrap_data_dir(data_dir: Path, database_url: str | None = None) -> BootstrapCredentials:
    """Migrate and bootstrap a data dir exactly as the server's first start does, without serving."""
    from opencts.opening import open_store

    open_store(Settings(data_dir=data_dir, database_url=database_url)).db.close()
    return read_credentials(data_dir / "credentials.json")


def ensure_data_trackers(client: httpx.Client, project_id: str, names: Sequence[str]) -> None:
    """Create the data trackers the generated OBS data events name (CTS refuses data traces without one)."""
    for i, name in enumerate(names):
        body = {
            "tracker_type": "data",
            "tracker_name": name,
            "data_bucket": {"data_bucket_name": f"bench-data-{i}"},
        }
        response = client.post(f"/v3/{project_id}/tracker", json=body)
        if response.status_code not in (201, 409):  # 409: it exists already (a reused database)
            raise RuntimeError(
                f"creating data tracker {name} answered {response.status_code}: {response.text[:300]}"
            )
