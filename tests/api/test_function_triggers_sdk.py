"""The official ``huaweicloudsdkfunctiongraph`` trigger operations against a real server, unchanged.

Create, list (a bare JSON array the SDK reads as ``body``), show, update, delete and batch delete of a
CTS trigger; the CTS SDK sees each trigger as a ``fun`` key event notification; and the SDK's error for
a trigger type OpenCTS does not implement carries our code and names CTS.
"""

from __future__ import annotations

import base64
import io
import uuid
import zipfile
from typing import Any

import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcts.v3 import CtsClient, ListNotificationsRequest
from huaweicloudsdkfunctiongraph.v2 import (
    BatchDeleteFunctionTriggersRequest,
    CreateFunctionRequest,
    CreateFunctionRequestBody,
    CreateFunctionTriggerRequest,
    CreateFunctionTriggerRequestBody,
    DeleteFunctionRequest,
    DeleteFunctionTriggerRequest,
    FuncCode,
    FunctionGraphClient,
    ListFunctionTriggersRequest,
    ShowFunctionTriggerRequest,
    TriggerEventDataRequestBody,
    UpdateTriggerRequest,
    UpdateTriggerRequestBody,
)

from cts_helpers import admin_sdk_client
from opencts.testing.server import ServerProcess

pytestmark = [pytest.mark.sdk, pytest.mark.slow]


def make_function(fg: Any) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", "def handler(event, context):\n    return 'ok'\n")
    body = CreateFunctionRequestBody(
        func_name=f"trig_{uuid.uuid4().hex[:8]}",
        package="default",
        runtime="Python3.10",
        handler="index.handler",
        memory_size=128,
        timeout=30,
        code_type="zip",
        func_code=FuncCode(file=base64.b64encode(buffer.getvalue()).decode()),
    )
    return str(fg.create_function(CreateFunctionRequest(body=body)).func_urn)


def cts_trigger(name: str, operations: list[str], status: str = "ACTIVE") -> Any:
    return CreateFunctionTriggerRequestBody(
        trigger_type_code="CTS",
        trigger_status=status,
        event_data=TriggerEventDataRequestBody(name=name, operations=operations),
    )


def fun_notifications(cts: Any) -> list[Any]:
    return list(cts.list_notifications(ListNotificationsRequest(notification_type="fun")).notifications or [])


def test_trigger_operations_through_the_sdk(live_server: ServerProcess) -> None:
    fg = admin_sdk_client(FunctionGraphClient, live_server)
    cts = admin_sdk_client(CtsClient, live_server)
    urn = make_function(fg)
    suffix = uuid.uuid4().hex[:6]

    made = fg.create_function_trigger(
        CreateFunctionTriggerRequest(
            function_urn=urn, body=cts_trigger(f"logins_{suffix}", ["IAM:user:login", "IAM:user:logout"])
        )
    )
    assert made.trigger_type_code == "CTS" and made.trigger_status == "ACTIVE"
    assert made.event_data.name == f"logins_{suffix}"
    assert made.event_data.operations == ["IAM:user:login", "IAM:user:logout"]
    assert made.created_time and made.last_updated_time
    other = fg.create_function_trigger(
        CreateFunctionTriggerRequest(
            function_urn=urn, body=cts_trigger(f"tracker_{suffix}", ["CTS:tracker:createTracker"])
        )
    )

    listed = fg.list_function_triggers(ListFunctionTriggersRequest(function_urn=urn)).body
    assert [t.trigger_id for t in listed] == [made.trigger_id, other.trigger_id]
    notification = next(n for n in fun_notifications(cts) if n.notification_id == made.trigger_id)
    assert notification.topic_id == urn.removesuffix(":latest") and notification.status == "enabled"

    shown = fg.show_function_trigger(
        ShowFunctionTriggerRequest(function_urn=urn, trigger_type_code="CTS", trigger_id=made.trigger_id)
    )
    assert shown.trigger_id == made.trigger_id and shown.event_data.operations == made.event_data.operations

    updated = fg.update_trigger(
        UpdateTriggerRequest(
            function_urn=urn,
            trigger_type_code="CTS",
            trigger_id=made.trigger_id,
            body=UpdateTriggerRequestBody(trigger_status="DISABLED"),
        )
    )
    assert updated.trigger_status == "DISABLED"
    notification = next(n for n in fun_notifications(cts) if n.notification_id == made.trigger_id)
    assert notification.status == "disabled"

    fg.delete_function_trigger(
        DeleteFunctionTriggerRequest(function_urn=urn, trigger_type_code="CTS", trigger_id=made.trigger_id)
    )
    listed = fg.list_function_triggers(ListFunctionTriggersRequest(function_urn=urn)).body
    assert [t.trigger_id for t in listed] == [other.trigger_id]
    fg.batch_delete_function_triggers(BatchDeleteFunctionTriggersRequest(function_urn=urn))
    # the SDK reads an empty array as an empty model: body None
    assert not fg.list_function_triggers(ListFunctionTriggersRequest(function_urn=urn)).body
    assert not [n for n in fun_notifications(cts) if n.topic_id == urn.removesuffix(":latest")]
    fg.delete_function(DeleteFunctionRequest(function_urn=urn))


def test_deleting_the_function_deletes_its_triggers(live_server: ServerProcess) -> None:
    fg = admin_sdk_client(FunctionGraphClient, live_server)
    cts = admin_sdk_client(CtsClient, live_server)
    urn = make_function(fg)
    fg.create_function_trigger(
        CreateFunctionTriggerRequest(
            function_urn=urn, body=cts_trigger(f"gone_{uuid.uuid4().hex[:6]}", ["IAM:user:login"])
        )
    )
    fg.delete_function(DeleteFunctionRequest(function_urn=urn))
    assert not [n for n in fun_notifications(cts) if n.topic_id == urn.removesuffix(":latest")]


def test_unsupported_trigger_types_are_refused_by_name(live_server: ServerProcess) -> None:
    fg = admin_sdk_client(FunctionGraphClient, live_server)
    urn = make_function(fg)
    body = CreateFunctionTriggerRequestBody(
        trigger_type_code="TIMER",
        trigger_status="ACTIVE",
        event_data=TriggerEventDataRequestBody(name="every_minute", schedule_type="Rate", schedule="1m"),
    )
    with pytest.raises(ClientRequestException) as caught:
        fg.create_function_trigger(CreateFunctionTriggerRequest(function_urn=urn, body=body))
    assert caught.value.status_code == 400 and caught.value.error_code == "CTS.0001"
    assert "OpenCTS implements CTS triggers" in caught.value.error_msg
    fg.delete_function(DeleteFunctionRequest(function_urn=urn))
