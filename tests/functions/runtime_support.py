"""Helpers for the runtime tests: code zips, specs, a pool in a temporary directory, waiting on /proc."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from opencts.functions.runtime import FunctionPool, FunctionSpec

SHARED_DIR = Path("/dev/shm")
"""World-writable and seen by the test and its workers alike: a worker run as its own uid has a /tmp of
its own (``_worker._private_tmp``), so files a test and a handler both touch live here."""


def zipped(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


class CodeStore:
    """The code zips by digest, as the function repository would serve them to the pool."""

    def __init__(self) -> None:
        self.zips: dict[str, bytes] = {}
        self.loads = 0

    def add(self, files: dict[str, str]) -> str:
        data = zipped(files)
        digest = hashlib.sha512(data).hexdigest()
        self.zips[digest] = data
        return digest

    async def load(self, spec: FunctionSpec) -> bytes:
        self.loads += 1
        return self.zips[spec.code_digest]


def make_spec(
    store: CodeStore,
    source: str,
    *,
    func_id: str = "f-1",
    timeout_s: int = 5,
    memory_mb: int = 256,
    user_data: dict[str, str] | None = None,
    handler: str = "index.handler",
) -> FunctionSpec:
    return FunctionSpec(
        func_id=func_id,
        func_urn=f"urn:fss:xx-east-1:p1:function:default:{func_id}:latest",
        project_id="p1",
        package="default",
        name=f"fn-{func_id}",
        version="latest",
        runtime="Python3.10",
        handler=handler,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        code_digest=store.add({"index.py": source}),
        user_data=user_data or {},
    )


@asynccontextmanager
async def running_pool(
    tmp_path: Path,
    store: CodeStore,
    *,
    workers: int = 8,
    concurrency: int = 4,
    queue_limit: int = 10,
    idle_seconds: float = 60.0,
) -> AsyncIterator[FunctionPool]:
    pool = FunctionPool(
        code_dir=tmp_path / "code",
        load_code=store.load,
        workers=workers,
        max_memory_mb=2048,
        concurrency=concurrency,
        queue_limit=queue_limit,
        idle_seconds=idle_seconds,
    )
    try:
        yield pool
    finally:
        await pool.close()


def session_members(session: int) -> list[int]:
    """Live (non-zombie) processes of a session."""
    members = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != b"Z":
            members.append(int(name))
    return members


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False
