"""The official ``huaweicloudsdkfunctiongraph`` FunctionGraphClient (v2) against a real server, unchanged.

Every function operation OpenCTS serves, end to end through the SDK's signing and models: create (inline
and zip), list with markers, show config and code, update code and config, invoke synchronously (the log
tail) and asynchronously (the queue, seen through list_async_invocations), cancel, statistics, metrics,
delete; and the SDK's error for each kind of bad input, carrying our error code.
"""

from __future__ import annotations

import base64
import io
import uuid
import zipfile
from typing import Any

import orjson
import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkfunctiongraph.v2 import (
    AsyncInvokeFunctionRequest,
    CreateFunctionRequest,
    CreateFunctionRequestBody,
    DeleteFunctionRequest,
    FuncCode,
    FunctionGraphClient,
    InvokeFunctionRequest,
    ListAsyncInvocationsRequest,
    ListFunctionsRequest,
    ListFunctionStatisticsRequest,
    ShowFunctionCodeRequest,
    ShowFunctionConfigRequest,
    ShowFunctionMetricsRequest,
    UpdateFunctionCodeRequest,
    UpdateFunctionCodeRequestBody,
    UpdateFunctionConfigRequest,
    UpdateFunctionConfigRequestBody,
)

from cts_helpers import admin_sdk_client
from opencts.testing.server import ServerProcess
from opencts.testing.waiting import wait_for

pytestmark = [pytest.mark.sdk, pytest.mark.slow]

SOURCE = b"""
import os

def handler(event, context):
    print("got", event.get("n"))
    return {"n": event.get("n"), "greeting": os.environ.get("GREETING")}
"""


def fg_client(server: ServerProcess) -> Any:
    return admin_sdk_client(FunctionGraphClient, server)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def create(client: Any, name: str, **fields: Any) -> Any:
    body = {
        "func_name": name,
        "package": "default",
        "runtime": "Python3.10",
        "timeout": 30,
        "handler": "index.handler",
        "memory_size": 256,
        "code_type": "inline",
        "func_code": FuncCode(file=b64(SOURCE)),
        "user_data": orjson.dumps({"GREETING": "hello"}).decode(),
        **fields,
    }
    return client.create_function(CreateFunctionRequest(body=CreateFunctionRequestBody(**body)))


def refused(call: Any) -> ClientRequestException:
    with pytest.raises(ClientRequestException) as caught:
        call()
    return caught.value


def test_every_function_call(live_server: Any) -> None:
    client = fg_client(live_server)
    name = f"fn-{uuid.uuid4().hex[:8]}"
    made = create(client, name, description="first")
    urn = made.func_urn
    assert urn.endswith(f":function:default:{name}:latest")
    assert made.runtime == "Python3.10" and made.memory_size == 256 and made.timeout == 30
    assert len(made.digest) == 128 and made.code_size > 0 and made.last_modified is not None

    shown = client.show_function_config(ShowFunctionConfigRequest(function_urn=urn))
    assert shown.func_name == name and shown.description == "first"
    assert orjson.loads(shown.user_data) == {"GREETING": "hello"}
    code = client.show_function_code(ShowFunctionCodeRequest(function_urn=urn))
    assert base64.b64decode(code.func_code.file) == SOURCE

    listed = client.list_functions(ListFunctionsRequest(func_name=name))
    assert [f.func_urn for f in listed.functions] == [urn] and listed.count == 1

    invoked = client.invoke_function(
        InvokeFunctionRequest(function_urn=urn, x_cff_log_type="tail", body={"n": 1})
    )
    assert invoked.status == 200, invoked
    assert orjson.loads(invoked.result) == {"n": 1, "greeting": "hello"}
    assert "got 1" in invoked.log
    assert invoked.request_id

    updated = client.update_function_config(
        UpdateFunctionConfigRequest(
            function_urn=urn,
            body=UpdateFunctionConfigRequestBody(
                func_name=name,
                runtime="Python3.12",
                timeout=10,
                handler="index.handler",
                memory_size=512,
                user_data=orjson.dumps({"GREETING": "hi"}).decode(),
                description="second",
            ),
        )
    )
    assert updated.memory_size == 512 and updated.description == "second"
    again = client.invoke_function(InvokeFunctionRequest(function_urn=urn, body={"n": 2}))
    assert orjson.loads(again.result)["greeting"] == "hi"
    assert again.log == ""  # no X-Cff-Log-Type: no log

    new_code = zipped({"index.py": b"def handler(event, context):\n    return 'zipped'\n"})
    client.update_function_code(
        UpdateFunctionCodeRequest(
            function_urn=urn,
            body=UpdateFunctionCodeRequestBody(
                code_type="zip", code_filename="code.zip", func_code=FuncCode(file=b64(new_code))
            ),
        )
    )
    assert orjson.loads(client.invoke_function(InvokeFunctionRequest(function_urn=urn, body={})).result) == (
        "zipped"
    )

    queued = client.async_invoke_function(AsyncInvokeFunctionRequest(function_urn=urn, body={"n": 3}))

    def succeeded() -> bool:
        found = client.list_async_invocations(
            ListAsyncInvocationsRequest(function_urn=urn, request_id=queued.request_id)
        )
        return bool(found.invocations) and found.invocations[0].status == "SUCCESS"

    wait_for(succeeded, 30, "the async invocation to succeed", interval=0.05)

    stats = client.list_function_statistics(ListFunctionStatisticsRequest(func_urn=urn, period="10"))
    assert sum(point.value for point in stats.count) == 4
    metrics = client.show_function_metrics(ShowFunctionMetricsRequest(func_urn=urn, period="10"))
    assert sum(point.value for point in metrics.count) == 4

    client.delete_function(DeleteFunctionRequest(function_urn=urn))
    gone = refused(lambda: client.show_function_config(ShowFunctionConfigRequest(function_urn=urn)))
    assert gone.status_code == 404


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"runtime": "Node.js18.15"}, "supported runtimes: Python3.9, Python3.10, Python3.12"),
        ({"memory_size": 300}, "memory_size"),
        ({"timeout": 2}, "3 to 259200"),
        ({"handler": "index"}, "<file>.<function>"),
        ({"user_data": "[1]"}, "JSON object"),
        ({"code_type": "obs"}, "not supported here"),
        ({"func_code": FuncCode(file="not base64!")}, "base64"),
        ({"code_type": "zip", "func_code": FuncCode(file=b64(b"PK not a zip"))}, "zip archive"),
        (
            {"code_type": "zip", "func_code": FuncCode(file=b64(zipped({"main.py": b"x = 1"})))},
            "no index.py",
        ),
        (
            {"code_type": "zip", "func_code": FuncCode(file=b64(zipped({"../evil.py": b"x = 1"})))},
            "leaves the code directory",
        ),
    ],
)
def test_bad_functions_are_refused_with_a_reason(
    live_server: Any, fields: dict[str, Any], words: str
) -> None:
    client = fg_client(live_server)
    error = refused(lambda: create(client, f"bad-{uuid.uuid4().hex[:8]}", **fields))
    assert error.status_code == 400
    assert error.error_code.startswith("CTS.") and words in error.error_msg


def test_a_function_name_is_unique_in_its_package(live_server: Any) -> None:
    client = fg_client(live_server)
    name = f"dup-{uuid.uuid4().hex[:8]}"
    create(client, name)
    assert refused(lambda: create(client, name)).status_code == 409
    create(client, name, package="other")  # another package is another function


def test_an_unknown_function_is_404(live_server: Any) -> None:
    client = fg_client(live_server)
    project = live_server.creds.project_id
    urn = f"urn:fss:local-1:{project}:function:default:nothing-{uuid.uuid4().hex[:6]}:latest"
    assert (
        refused(lambda: client.invoke_function(InvokeFunctionRequest(function_urn=urn, body={}))).status_code
        == 404
    )
    other = "urn:fss:local-1:0123456789abcdef0123456789abcdef:function:default:x:latest"
    assert refused(
        lambda: client.show_function_config(ShowFunctionConfigRequest(function_urn=other))
    ).status_code in (
        403,
        404,
    )
