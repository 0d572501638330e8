"""A bad handler harms neither the server nor other functions: timeouts, memory, crashes, forks, floods."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

import pytest
from runtime_support import SHARED_DIR, CodeStore, alive, make_spec, running_pool, session_members

from opencts.functions.runtime import FunctionSpec
from opencts.testing.waiting import until

HEALTHY = "import os\ndef handler(event, context):\n    return {'ok': True, 'pid': os.getpid()}\n"


async def test_a_handler_sleeping_past_its_timeout_is_killed_on_time(tmp_path: Path) -> None:
    store = CodeStore()
    source = (
        "import os, time\n"
        "def handler(event, context):\n"
        "    print('going to sleep in', os.getpid())\n"
        "    time.sleep(60)\n"
    )
    spec = make_spec(store, source, timeout_s=1)
    async with running_pool(tmp_path, store) as pool:
        started = time.monotonic()
        result = await pool.invoke(spec, b"{}", request_id="r", credentials=None)
        elapsed = time.monotonic() - started
        assert result.status == "timeout"
        assert elapsed < spec.timeout_s + 1
        assert json.loads(result.result)["errorType"] == "TimeoutError"
        pid = int(result.log.split("going to sleep in ")[1].split()[0])
        assert not alive(pid)
        assert pool.stats()["workers"] == 0


async def test_allocating_2_gb_at_256_mb_is_stopped_and_the_function_still_serves(tmp_path: Path) -> None:
    store = CodeStore()
    source = (
        "def handler(event, context):\n"
        "    if event.get('big'):\n"
        "        block = bytearray(2 * 1024 ** 3)\n"
        "        return len(block)\n"
        "    return 'fine'\n"
    )
    spec = make_spec(store, source, memory_mb=256)
    async with running_pool(tmp_path, store) as pool:
        result = await pool.invoke(spec, b'{"big": true}', request_id="r1", credentials=None)
        assert result.status == "oom"
        assert json.loads(result.result)["errorType"] == "MemoryError"
        assert "256 MB" in result.error_message
        after = await pool.invoke(spec, b"{}", request_id="r2", credentials=None)
    assert (after.status, after.result) == ("success", '"fine"')


async def test_a_hundred_crashes_in_a_row_leave_the_pool_serving(tmp_path: Path) -> None:
    store = CodeStore()
    crashing = make_spec(store, "import os\ndef handler(event, context):\n    os._exit(3)\n", func_id="crash")
    segfault = make_spec(
        store,
        "import ctypes\ndef handler(event, context):\n    ctypes.string_at(0)\n",
        func_id="segv",
    )
    healthy = make_spec(store, HEALTHY, func_id="ok")
    async with running_pool(tmp_path, store, workers=4) as pool:
        for i in range(100):
            result = await pool.invoke(crashing, b"{}", request_id=f"c{i}", credentials=None)
            assert result.status == "crashed", result
        assert "exited with code 3" in result.error_message
        crashed = await pool.invoke(segfault, b"{}", request_id="s", credentials=None)
        assert crashed.status == "crashed" and "SIGSEGV" in crashed.error_message
        served = await pool.invoke(healthy, b"{}", request_id="ok", credentials=None)
        assert served.status == "success"
        assert pool.stats()["free_slots"] + pool.stats()["workers"] == 4, "no slot leaks"


FORK_BOMB = """
import os, time

def handler(event, context):
    started = 0
    for _ in range(500):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        started += 1
    return {"started": started, "pid": os.getpid(), "sid": os.getsid(0)}
"""


async def test_a_handler_starting_500_processes_leaves_no_stray_and_others_serve(tmp_path: Path) -> None:
    store = CodeStore()
    bomb = make_spec(store, FORK_BOMB, func_id="bomb", timeout_s=20)
    healthy = make_spec(store, HEALTHY, func_id="ok")
    async with running_pool(tmp_path, store) as pool:
        warm = await pool.invoke(healthy, b"{}", request_id="w", credentials=None)
        result = await pool.invoke(bomb, b"{}", request_id="b", credentials=None)
        assert result.status == "success", result
        value = json.loads(result.result)
        if os.geteuid() == 0:
            assert value["started"] < 500, "the worker's uid has a process limit"
        await until(lambda: session_members(value["sid"]) == [value["pid"]])
        served = await pool.invoke(healthy, b"{}", request_id="ok", credentials=None)
        assert served.status == "success"
        assert json.loads(served.result)["pid"] == json.loads(warm.result)["pid"]
        again = await pool.invoke(bomb, b"{}", request_id="b2", credentials=None)
        assert again.status == "success"
        await until(lambda: session_members(value["sid"]) == [value["pid"]])


async def test_an_output_flood_is_capped_to_its_tail(tmp_path: Path) -> None:
    store = CodeStore()
    source = (
        "import sys\n"
        "def handler(event, context):\n"
        "    line = 'x' * 1023 + '\\n'\n"
        "    for _ in range(8 * 1024):\n"
        "        sys.stdout.write(line)\n"
        "    print('the very end')\n"
        "    return 'done'\n"
    )
    async with running_pool(tmp_path, store) as pool:
        result = await pool.invoke(make_spec(store, source), b"{}", request_id="r", credentials=None)
    assert result.status == "success"
    assert len(result.log.encode()) <= 1024 * 1024 + 100
    assert "bytes of log dropped]" in result.log
    assert result.log.endswith("the very end\n")


async def test_a_zip_escaping_its_directory_is_refused(tmp_path: Path) -> None:
    store = CodeStore()
    digest = store.add({"index.py": HEALTHY, "../escaped.py": "print('out')\n"})
    spec = FunctionSpec(
        func_id="zip",
        func_urn="urn:fss:xx:p1:function:default:zip:latest",
        project_id="p1",
        package="default",
        name="zip",
        version="latest",
        runtime="Python3.12",
        handler="index.handler",
        timeout_s=3,
        memory_mb=128,
        code_digest=digest,
        user_data={},
    )
    async with running_pool(tmp_path, store) as pool:
        result = await pool.invoke(spec, b"{}", request_id="r", credentials=None)
        assert result.status == "error"
        assert json.loads(result.result)["errorType"] == "InvalidCode"
        assert "leaves the code directory" in result.error_message
        assert pool.stats()["free_slots"] == 8
    assert not (tmp_path / "escaped.py").exists()
    assert not (tmp_path / "code" / "escaped.py").exists()
    assert not (tmp_path / "code" / digest).exists()


ESCAPING = """
import os, time

def handler(event, context):
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(write_end, str(os.getpid()).encode())
            time.sleep(60)
        os._exit(0)
    os.wait()
    return {"escaped": int(os.read(read_end, 32)), "pid": os.getpid()}
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="only a uid of its own finds what left the worker's session")
async def test_a_process_escaping_the_workers_session_is_found_by_its_uid(tmp_path: Path) -> None:
    store = CodeStore()
    async with running_pool(tmp_path, store, idle_seconds=4.0) as pool:
        result = await pool.invoke(make_spec(store, ESCAPING), b"{}", request_id="r", credentials=None)
        assert result.status == "success", result
        value = json.loads(result.result)
        await until(lambda: not alive(value["escaped"]), timeout=3.0)
        assert alive(value["pid"]), "the idle worker itself stays warm"


async def test_a_module_hanging_at_import_times_out_like_a_handler(tmp_path: Path) -> None:
    store = CodeStore()
    spec = make_spec(
        store, "import time\ntime.sleep(60)\ndef handler(event, context):\n    return 1\n", timeout_s=1
    )
    async with running_pool(tmp_path, store) as pool:
        started = time.monotonic()
        result = await pool.invoke(spec, b"{}", request_id="r", credentials=None)
        assert result.status == "timeout"
        assert time.monotonic() - started < spec.timeout_s + 1
        assert pool.stats()["free_slots"] == 8


SERVER_SIDE = """
import asyncio, hashlib, io, sys, zipfile
from pathlib import Path
from opencts.functions.runtime import FunctionPool, FunctionSpec

SOURCE = '''
import os, subprocess, time
def handler(event, context):
    child = subprocess.Popen(["sleep", "60"])
    with open(event["pids"], "w") as out:
        out.write(f"{os.getpid()} {child.pid}")
    time.sleep(60)
'''

async def main() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", SOURCE)
    data = buffer.getvalue()

    async def load(spec: FunctionSpec) -> bytes:
        return data

    pool = FunctionPool(code_dir=Path(sys.argv[1]), load_code=load, workers=2, max_memory_mb=512,
                        concurrency=1, queue_limit=1, idle_seconds=60)
    spec = FunctionSpec(func_id="f", func_urn="u", project_id="p", package="default", name="f",
                        version="latest", runtime="Python3.10", handler="index.handler", timeout_s=100,
                        memory_mb=128, code_digest=hashlib.sha512(data).hexdigest(), user_data={})
    await pool.invoke(spec, ('{"pids": "%s"}' % sys.argv[2]).encode(), request_id="r", credentials=None)

asyncio.run(main())
"""


async def test_workers_die_with_the_server_that_started_them(tmp_path: Path) -> None:
    pids_file = SHARED_DIR / f"opencts-pids-{uuid.uuid4().hex}"
    pids_file.touch()
    pids_file.chmod(0o666)
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVER_SIDE, str(tmp_path / "code"), str(pids_file)
    )
    try:
        await until(lambda: bool(pids_file.read_text()))
        worker, child = (int(pid) for pid in pids_file.read_text().split())
        assert alive(worker) and alive(child)
        server.kill()
        await server.wait()
        await until(lambda: not alive(worker) and not alive(child), timeout=5.0)
    finally:
        pids_file.unlink()
        if server.returncode is None:
            server.kill()
            await server.wait()


@pytest.mark.skipif(
    os.geteuid() != 0, reason="a worker drops to a uid of its own only when the server is root"
)
async def test_a_handler_cannot_read_the_servers_private_files(tmp_path: Path) -> None:
    # outside /tmp, which the worker does not see at all (it has its own)
    private = SHARED_DIR / f"opencts-data-{uuid.uuid4().hex}"
    private.mkdir(mode=0o700)
    (private / "credentials.json").write_text("{}")
    store = CodeStore()
    source = (
        "import os\n"
        "def handler(event, context):\n"
        "    try:\n"
        "        open(event['path']).read()\n"
        "    except PermissionError:\n"
        "        return {'uid': os.getuid(), 'read': False}\n"
        "    return {'uid': os.getuid(), 'read': True}\n"
    )
    payload = json.dumps({"path": str(private / "credentials.json")}).encode()
    try:
        async with running_pool(tmp_path, store) as pool:
            result = await pool.invoke(make_spec(store, source), payload, request_id="r", credentials=None)
    finally:
        shutil.rmtree(private)
    value = json.loads(result.result)
    assert value["read"] is False
    assert value["uid"] != 0
