"""The function pool with real worker processes: results, context, environment, queueing, warm workers."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from runtime_support import SHARED_DIR, CodeStore, alive, make_spec, running_pool

from opencts.functions.runtime import Credentials, TooBusy
from opencts.testing.waiting import until

CONTEXT_HANDLER = """
import os

def handler(event, context):
    print("event seen", event["n"])
    context.getLogger().info("from the logger")
    return {
        "event": event,
        "request_id": context.getRequestID(),
        "remaining": context.getRemainingTimeInMilliSeconds(),
        "colour": context.getUserData("COLOUR"),
        "missing": context.getUserData("NOPE", "fallback"),
        "name": context.getFunctionName(),
        "timeout": context.getRunningTimeInSeconds(),
        "version": context.getVersion(),
        "memory": context.getMemorySize(),
        "cpu": context.getCPUNumber(),
        "package": context.getPackage(),
        "project": context.getProjectID(),
        "alias": context.getAlias(),
        "token": context.getToken(),
        "ak": context.getAccessKey(),
        "sk": context.getSecretKey(),
        "sak": context.getSecurityAccessKey(),
        "ssk": context.getSecuritySecretKey(),
        "st": context.getSecurityToken(),
        "environ": dict(os.environ),
        "pid": os.getpid(),
    }
"""

CREDENTIALS = Credentials(
    access_key="AK4TESTING0001",
    secret_key="sk-9f2a77e1c0d4b6a8secret",
    security_token="st-0123456789abcdef-token",
    auth_token="MIIauth-token-0123456789",
    expires_at_ms=0,
)


async def test_a_handler_runs_with_the_context_and_only_its_own_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENCTS_MASTER_KEY", "server-secret-never-for-handlers")
    store = CodeStore()
    spec = make_spec(store, CONTEXT_HANDLER, timeout_s=7, memory_mb=512, user_data={"COLOUR": "teal"})
    async with running_pool(tmp_path, store) as pool:
        result = await pool.invoke(spec, b'{"n": 1}', request_id="req-1", credentials=CREDENTIALS)
        assert result.status == "success", result
        value = json.loads(result.result)
        assert value["event"] == {"n": 1}
        assert value["request_id"] == "req-1"
        assert 0 < value["remaining"] <= 7000
        assert (value["colour"], value["missing"]) == ("teal", "fallback")
        assert (value["name"], value["timeout"], value["version"]) == ("fn-f-1", 7, "latest")
        assert (value["memory"], value["package"], value["project"], value["alias"]) == (
            512,
            "default",
            "p1",
            "",
        )
        assert value["cpu"] >= 1
        assert (value["token"], value["ak"], value["sk"]) == (
            CREDENTIALS.auth_token,
            CREDENTIALS.access_key,
            CREDENTIALS.secret_key,
        )
        assert (value["sak"], value["ssk"], value["st"]) == (
            CREDENTIALS.access_key,
            CREDENTIALS.secret_key,
            CREDENTIALS.security_token,
        )
        environ = value["environ"]
        assert environ["COLOUR"] == "teal"
        assert "OPENCTS_MASTER_KEY" not in environ
        assert not [name for name in environ if name.startswith("OPENCTS_")]
        assert set(environ) <= {"COLOUR", "PATH", "LANG", "HOME", "TMPDIR", "MALLOC_ARENA_MAX"} | {
            name for name in environ if name.startswith("RUNTIME_")
        }
        assert value["pid"] != os.getpid()
        assert "event seen 1" in result.log
        assert " req-1 INFO from the logger" in result.log
        for secret in (CREDENTIALS.secret_key, CREDENTIALS.security_token, CREDENTIALS.auth_token):
            assert secret not in result.log
        assert result.error_message == ""

        second = await pool.invoke(spec, b'{"n": 2}', request_id="req-2", credentials=None)
        again = json.loads(second.result)
        assert again["pid"] == value["pid"], "the warm worker serves the next invocation"
        assert (again["token"], again["ak"], again["st"]) == ("", "", "")
        assert "event seen 1" not in second.log and "event seen 2" in second.log
    assert not alive(value["pid"]), "closing the pool kills its workers"


async def test_credentials_printed_by_a_handler_are_masked_in_its_log(tmp_path: Path) -> None:
    store = CodeStore()
    source = (
        "def handler(event, context):\n"
        "    print(context.getSecurityToken(), context.getToken(), context.getSecretKey())\n"
        "    return len(context.getSecurityToken())\n"
    )
    async with running_pool(tmp_path, store) as pool:
        result = await pool.invoke(make_spec(store, source), b"{}", request_id="r", credentials=CREDENTIALS)
    assert result.status == "success"
    assert result.result == str(len(CREDENTIALS.security_token))
    for secret in (CREDENTIALS.secret_key, CREDENTIALS.security_token, CREDENTIALS.auth_token):
        assert secret not in result.log
    assert "******" in result.log


async def test_an_exception_is_a_functiongraph_error_object_and_the_worker_stays(tmp_path: Path) -> None:
    store = CodeStore()
    source = (
        "import os\n"
        "def handler(event, context):\n"
        "    if event.get('fail'):\n"
        "        raise ValueError('bad input ' + str(event['fail']))\n"
        "    return {'pid': os.getpid(), 'odd': {1, 2}}\n"
    )
    spec = make_spec(store, source)
    async with running_pool(tmp_path, store) as pool:
        failed = await pool.invoke(spec, b'{"fail": 7}', request_id="r1", credentials=None)
        assert failed.status == "error"
        error = json.loads(failed.result)
        assert error["errorType"] == "ValueError"
        assert error["errorMessage"] == "bad input 7"
        assert any("raise ValueError" in line for line in error["stackTrace"])
        assert failed.error_message == "bad input 7"
        assert pool.stats()["idle"] == 1
        ok = await pool.invoke(spec, b"{}", request_id="r2", credentials=None)
    assert ok.status == "success"
    assert json.loads(ok.result)["odd"] == "{1, 2}", "what JSON cannot hold is returned as its str()"


async def test_a_handler_that_cannot_be_imported_is_an_error(tmp_path: Path) -> None:
    store = CodeStore()
    async with running_pool(tmp_path, store) as pool:
        missing = await pool.invoke(
            make_spec(store, "x = 1\n", handler="nowhere.handler"), b"{}", request_id="r", credentials=None
        )
        broken = await pool.invoke(
            make_spec(store, "def handler(:\n", func_id="f-2"), b"{}", request_id="r", credentials=None
        )
    assert missing.status == "error" and json.loads(missing.result)["errorType"] == "ModuleNotFoundError"
    assert broken.status == "error" and json.loads(broken.result)["errorType"] == "SyntaxError"


async def test_excess_invocations_queue_and_past_the_bound_are_refused(tmp_path: Path) -> None:
    store = CodeStore()
    gate = SHARED_DIR / f"opencts-gate-{uuid.uuid4().hex}"
    source = (
        "import os, time\n"
        "def handler(event, context):\n"
        "    while not os.path.exists(event['gate']):\n"
        "        time.sleep(0.01)\n"
        "    return event['i']\n"
    )
    spec = make_spec(store, source)
    async with running_pool(tmp_path, store, concurrency=1, queue_limit=1) as pool:

        def call(i: int) -> asyncio.Task[object]:
            payload = json.dumps({"gate": str(gate), "i": i}).encode()
            return asyncio.create_task(pool.invoke(spec, payload, request_id=f"r{i}", credentials=None))

        first = call(1)
        await until(lambda: pool.stats()["starting"] + pool.stats()["busy"] == 1)
        second = call(2)
        await until(lambda: pool.stats()["queued"] == 1)
        with pytest.raises(TooBusy):
            await pool.invoke(spec, b'{"i": 3}', request_id="r3", credentials=None)
        gate.touch()
        try:
            results = await asyncio.gather(first, second)
        finally:
            gate.unlink()
    assert [result.status for result in results] == ["success", "success"]  # type: ignore[attr-defined]
    assert [result.result for result in results] == ["1", "2"]  # type: ignore[attr-defined]


async def test_forget_retires_the_warm_workers_and_a_new_config_gets_new_ones(tmp_path: Path) -> None:
    store = CodeStore()
    source = "import os\ndef handler(event, context):\n    return os.getpid()\n"
    spec = make_spec(store, source)
    async with running_pool(tmp_path, store) as pool:
        pid = int((await pool.invoke(spec, b"{}", request_id="r1", credentials=None)).result)
        assert pool.stats()["workers"] == 1
        pool.forget(spec.func_id)
        await until(lambda: not alive(pid))
        assert pool.stats()["workers"] == 0
        again = int((await pool.invoke(spec, b"{}", request_id="r2", credentials=None)).result)
        assert again != pid
        changed = make_spec(store, source + "# changed\n")
        third = int((await pool.invoke(changed, b"{}", request_id="r3", credentials=None)).result)
        assert third != again
        await until(lambda: not alive(again))
        assert store.loads == 2, "code is unpacked once per digest"


async def test_idle_workers_die_and_the_global_cap_evicts_another_functions_idle_worker(
    tmp_path: Path,
) -> None:
    store = CodeStore()
    source = "import os\ndef handler(event, context):\n    return os.getpid()\n"
    first, second = make_spec(store, source, func_id="a"), make_spec(store, source, func_id="b")
    async with running_pool(tmp_path, store, workers=1) as pool:
        pid_a = int((await pool.invoke(first, b"{}", request_id="r1", credentials=None)).result)
        pid_b = int((await pool.invoke(second, b"{}", request_id="r2", credentials=None)).result)
        assert not alive(pid_a)
        assert pool.stats()["workers"] == 1
        assert alive(pid_b)
    async with running_pool(tmp_path, store, idle_seconds=0.2) as pool:
        pid = int((await pool.invoke(first, b"{}", request_id="r3", credentials=None)).result)
        await until(lambda: not alive(pid))
        assert pool.stats()["workers"] == 0


async def test_a_queued_invocation_gets_its_whole_timeout_once_it_runs(tmp_path: Path) -> None:
    store = CodeStore()
    source = "import time\ndef handler(event, context):\n    time.sleep(event['s'])\n    return 'slept'\n"
    spec = make_spec(store, source, timeout_s=2)
    async with running_pool(tmp_path, store, concurrency=1) as pool:
        results = await asyncio.gather(
            *(pool.invoke(spec, b'{"s": 1.3}', request_id=f"r{i}", credentials=None) for i in range(2))
        )
    assert [result.status for result in results] == ["success", "success"]
    assert all(result.duration_ms < 2000 for result in results), "time spent queued is not the handler's"


async def test_a_handler_that_silences_its_stdout_still_ends_on_time_with_its_logger_lines(
    tmp_path: Path,
) -> None:
    store = CodeStore()
    source = (
        "import os\n"
        "def handler(event, context):\n"
        "    print('before')\n"
        "    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)\n"
        "    print('lost')\n"
        "    context.getLogger().warn('still logged')\n"
        "    return 1\n"
    )
    spec = make_spec(store, source)
    async with running_pool(tmp_path, store) as pool:
        for i in range(2):
            result = await pool.invoke(spec, b"{}", request_id=f"r{i}", credentials=None)
            assert result.status == "success"
            assert result.duration_ms < 2000
            assert f" r{i} WARN still logged" in result.log and "lost" not in result.log


async def test_a_handler_calls_an_http_api_with_requests_and_its_token(tmp_path: Path) -> None:
    received: list[tuple[str, str | None, bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers.get("X-Auth-Token"), body))
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"message_id": "m-1"}')

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    store = CodeStore()
    source = (
        "import json, os, requests\n"
        "def handler(event, context):\n"
        "    url = 'http://' + context.getUserData('HOST') + '/v2/' + context.getProjectID() + '/publish'\n"
        "    headers = {'X-Auth-Token': context.getToken(), 'accept': 'application/json'}\n"
        "    response = requests.post(url, json={'message': event['m']}, headers=headers, timeout=5)\n"
        "    return {'status': response.status_code, 'body': response.json()}\n"
    )
    host = f"127.0.0.1:{server.server_address[1]}"
    spec = make_spec(store, source, user_data={"HOST": host})
    try:
        async with running_pool(tmp_path, store) as pool:
            result = await pool.invoke(spec, b'{"m": "hello"}', request_id="r", credentials=CREDENTIALS)
    finally:
        server.shutdown()
        server.server_close()
    assert result.status == "success", result
    assert json.loads(result.result) == {"status": 201, "body": {"message_id": "m-1"}}
    assert received == [("/v2/p1/publish", CREDENTIALS.auth_token, b'{"message": "hello"}')]


async def test_more_functions_than_worker_processes_all_get_served(tmp_path: Path) -> None:
    store = CodeStore()
    source = "import time\ndef handler(event, context):\n    time.sleep(0.02)\n    return event['i']\n"
    specs = [make_spec(store, source, func_id=f"f{n}") for n in range(6)]
    async with running_pool(tmp_path, store, workers=2, concurrency=2) as pool:
        most = 0

        async def call(i: int) -> str:
            nonlocal most
            result = await pool.invoke(specs[i % 6], b'{"i": %d}' % i, request_id=f"r{i}", credentials=None)
            stats = pool.stats()
            most = max(most, stats["workers"] + stats["starting"])
            assert result.status == "success", result
            return result.result

        results = await asyncio.gather(*(call(i) for i in range(36)))
    assert results == [str(i) for i in range(36)]
    assert most <= 2


async def test_text_that_is_not_utf_8_comes_back_readable(tmp_path: Path) -> None:
    store = CodeStore()
    source = (
        "def handler(event, context):\n"
        "    if event.get('fail'):\n"
        "        raise ValueError('bad \\ud800 text')\n"
        "    return {'text': 'caf\\u00e9 \\ud800'}\n"
    )
    spec = make_spec(store, source)
    async with running_pool(tmp_path, store) as pool:
        ok = await pool.invoke(spec, b"{}", request_id="r1", credentials=None)
        failed = await pool.invoke(spec, b'{"fail": 1}', request_id="r2", credentials=None)
    assert ok.status == "success" and json.loads(ok.result) == {"text": "caf\u00e9 ?"}
    assert failed.status == "error" and json.loads(failed.result)["errorMessage"] == "bad ? text"
