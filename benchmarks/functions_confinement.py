"""Cold start of a function with and without its filesystem confinement, as root and as an ordinary user.

The confinement (``functions/landlock.py``: the Landlock ruleset, and without root a user+mount namespace
with a private /tmp) runs in every worker before the handler loads, so it costs every cold start once and
warm invocations nothing. Each configuration runs in a child process (the server side), as this user and,
when this is root, as ``nobody`` (``opencts.testing.unprivileged``), with a pool confined or not; it times
``invoke`` of a new function (spawn + confine + import + first call) for a trivial handler and one that
imports ``requests``. The floor is the bare interpreter: ``python -I -c pass`` and ``-c 'import requests'``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

TRIVIAL = "def handler(event, context):\n    return 1\n"
WITH_REQUESTS = "import requests\ndef handler(event, context):\n    return 1\n"


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", source)
    return buffer.getvalue()


async def _child(code_dir: Path, confine: bool, count: int) -> dict[str, list[float]]:
    from opencts.functions.runtime import FunctionPool, FunctionSpec

    zips = {name: _zip(source) for name, source in (("trivial", TRIVIAL), ("requests", WITH_REQUESTS))}
    by_digest = {hashlib.sha512(data).hexdigest(): data for data in zips.values()}

    async def load(spec: FunctionSpec) -> bytes:
        return by_digest[spec.code_digest]

    pool = FunctionPool(
        code_dir=code_dir,
        load_code=load,
        workers=4,
        max_memory_mb=1024,
        concurrency=1,
        queue_limit=10,
        idle_seconds=600,
        hidden=(code_dir.parent / "data",),
        confine=confine,
    )
    figures: dict[str, list[float]] = {}
    try:
        for name, data in zips.items():
            digest = hashlib.sha512(data).hexdigest()
            times = []
            for i in range(count + 1):
                spec = FunctionSpec(
                    func_id=f"{name}-{i}",
                    func_urn="u",
                    project_id="p",
                    package="default",
                    name=f"{name}-{i}",
                    version="latest",
                    runtime="Python3.12",
                    handler="index.handler",
                    timeout_s=30,
                    memory_mb=256,
                    code_digest=digest,
                    user_data={},
                )
                started = time.perf_counter()
                result = await pool.invoke(spec, b"{}", request_id="r", credentials=None)
                elapsed = (time.perf_counter() - started) * 1000
                if result.status != "success":
                    raise RuntimeError(f"{name}: {result.status} {result.result} {result.log}")
                pool.forget(spec.func_id)
                if i:  # the first one also unpacks the code
                    times.append(elapsed)
            figures[name] = times
    finally:
        await pool.close()
    return figures


def _floor(statement: str, count: int) -> float:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-c", statement], check=True)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _configuration(user: str, confine: bool, count: int) -> dict[str, list[float]]:
    from opencts.testing.unprivileged import NOBODY, as_user

    root = Path(tempfile.mkdtemp(prefix="opencts-bench-confine-"))
    try:
        os.chmod(root, 0o755)
        (root / "code").mkdir()
        (root / "data").mkdir(mode=0o700)
        argv = [sys.executable, __file__, "--child", str(root / "code"), "--count", str(count)]
        argv += ["--confine"] if confine else []
        if user == "nobody":
            for path in (root / "code", root / "data"):
                os.chown(path, NOBODY, NOBODY)
            argv = as_user(argv)
        done = subprocess.run(argv, capture_output=True, text=True, check=True, cwd="/")
        figures: dict[str, list[float]] = json.loads(done.stdout.strip().splitlines()[-1])
        return figures
    finally:
        shutil.rmtree(root, ignore_errors=True)


STEPS = """
import importlib.util, json, os, sys, time
location = sys.argv[1]
module_spec = importlib.util.spec_from_file_location("opencts_worker", location)
worker = importlib.util.module_from_spec(module_spec)
module_spec.loader.exec_module(worker)
code_fd = os.open(sys.argv[2], os.O_RDONLY | os.O_DIRECTORY)
spec = {"landlock": int(sys.argv[3]), "hidden": [sys.argv[4]], "code_fd": code_fd, "uid": None}
started = time.perf_counter()
ruleset = worker._ruleset(spec)
ruled = time.perf_counter()
worker._hold_import_directories()
private = worker._private_tmp_unprivileged(512 * 1024 * 1024)
mounted = time.perf_counter()
worker._grant_tmp(ruleset, private, "/tmp")
ruleset.restrict_self()
done = time.perf_counter()
print(json.dumps({"rules": (ruled - started) * 1000, "namespace": (mounted - ruled) * 1000,
                  "restrict": (done - mounted) * 1000, "private": private}))
"""


def _steps(count: int) -> dict[str, list[float]]:
    """The confinement's own steps as an unprivileged worker takes them, each timed inside the process."""
    from opencts.functions import _worker
    from opencts.functions.landlock import abi_version
    from opencts.testing.unprivileged import as_user

    root = Path(tempfile.mkdtemp(prefix="opencts-bench-steps-"))
    os.chmod(root, 0o755)
    steps: dict[str, list[float]] = {"rules": [], "namespace": [], "restrict": []}
    try:
        argv = [sys.executable, "-I", "-c", STEPS, _worker.__file__, str(root), str(abi_version()), "/x"]
        for _ in range(count):
            done = subprocess.run(as_user(argv), capture_output=True, text=True, check=True, cwd="/")
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            for name in steps:
                steps[name].append(figures[name])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10, help="cold starts per configuration and round")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds, configurations interleaved (load noise)"
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--confine", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(asyncio.run(_child(args.child, args.confine, args.count))))
        return
    from _measure import console
    from rich.table import Table

    from opencts.functions.landlock import abi_version

    title = f"function cold start, median of {args.count * args.rounds} (Landlock ABI {abi_version()})"
    table = Table(title=title)
    for column in ("server runs as", "confined", "trivial handler", "handler importing requests"):
        table.add_column(column, justify="right")
    table.add_row(
        "floor: bare interpreter",
        "",
        f"{_floor('pass', args.count):.1f} ms",
        f"{_floor('import requests', args.count):.1f} ms",
    )
    users = ["root", "nobody"] if os.geteuid() == 0 else [str(os.geteuid())]
    configurations = [(user, confine) for user in users for confine in (False, True)]
    times: dict[tuple[str, bool], dict[str, list[float]]] = {
        c: {"trivial": [], "requests": []} for c in configurations
    }
    for _ in range(args.rounds):
        for user, confine in configurations:
            for name, values in _configuration(user, confine, args.count).items():
                times[(user, confine)][name] += values
    for (user, confine), figures in times.items():
        table.add_row(
            user,
            "yes" if confine else "no",
            f"{statistics.median(figures['trivial']):.1f} ms",
            f"{statistics.median(figures['requests']):.1f} ms",
        )
    steps = _steps(args.count)
    console.print(table)
    console.print(
        "confinement steps in an unprivileged worker, median: "
        + ", ".join(f"{name} {statistics.median(values):.2f} ms" for name, values in steps.items())
        + " (rules: load landlock.py, plan, open and add each rule; namespace: unshare, uid map, two tmpfs)"
    )


if __name__ == "__main__":
    main()
