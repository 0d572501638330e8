"""The official ``huaweicloudsdkcts`` CtsClient against a real server: the four notification calls.

The live server is shared by the whole session, so names are unique per run and assertions never count
what other tests may have created.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcts.v3 import (
    CreateNotificationRequest,
    CreateNotificationRequestBody,
    CtsClient,
    DeleteNotificationRequest,
    Filter,
    ListNotificationsRequest,
    NotificationUsers,
    Operations,
    UpdateNotificationRequest,
    UpdateNotificationRequestBody,
)

from cts_helpers import admin_sdk_client
from opencts.client.signing import HmacAuth
from opencts.testing.server import ServerProcess

pytestmark = [pytest.mark.sdk, pytest.mark.slow]


@pytest.fixture
def client(live_server: ServerProcess) -> Any:
    return admin_sdk_client(CtsClient, live_server)


def create_topic(live_server: ServerProcess, name: str) -> str:
    """An SMN topic through the SMN API, signed like any SDK call."""
    creds = live_server.creds
    auth = HmacAuth(creds.access_key, creds.secret_key, project_id=creds.project_id)
    resp = httpx.post(
        f"{live_server.url}/v2/{creds.project_id}/notifications/topics",
        json={"name": name, "display_name": name},
        auth=auth,
        timeout=30,
    )
    assert resp.status_code < 300, resp.text
    return str(resp.json()["topic_urn"])


def test_notification_lifecycle(client: Any, live_server: ServerProcess) -> None:
    suffix = uuid.uuid4().hex[:8]
    topic = create_topic(live_server, f"sdk-alarms-{suffix}")
    name = f"sdk_logins_{suffix}"
    created = client.create_notification(CreateNotificationRequest(body=CreateNotificationRequestBody(
        notification_name=name,
        operation_type="customized",
        operations=[Operations(service_type="IAM", resource_type="user", trace_names=["login", "logout"])],
        notify_user_list=[NotificationUsers(user_group="admins", user_list=["alice", "bob"])],
        topic_id=topic,
        filter=Filter(condition="AND", is_support_filter=True, rule=["code = 200", "trace_rating != normal"]),
        agency_name="cts_admin_trust",
    )))  # fmt: skip
    assert created.status_code == 201
    assert created.notification_name == name and created.status == "enabled"
    assert created.notification_type == "smn" and created.topic_id == topic
    assert created.project_id == live_server.creds.project_id and isinstance(created.create_time, int)
    assert created.operations[0].trace_names == ["login", "logout"]
    assert created.notify_user_list[0].user_list == ["alice", "bob"]
    assert (
        created.filter.rule == ["code = 200", "trace_rating != normal"] and created.filter.is_support_filter
    )

    updated = client.update_notification(UpdateNotificationRequest(body=UpdateNotificationRequestBody(
        notification_id=created.notification_id,
        notification_name=name,
        operation_type="complete",
        status="disabled",
        topic_id=topic,
    )))  # fmt: skip
    assert updated.status_code == 200
    assert updated.status == "disabled" and updated.operation_type == "complete"

    found = client.list_notifications(
        ListNotificationsRequest(notification_type="smn", notification_name=name)
    )
    [listed] = found.notifications
    assert listed.notification_id == created.notification_id and listed.status == "disabled"
    assert listed.create_time == created.create_time and listed.operations == []
    everything = client.list_notifications(ListNotificationsRequest(notification_type="smn")).notifications
    assert created.notification_id in {n.notification_id for n in everything}
    functions = client.list_notifications(ListNotificationsRequest(notification_type="fun")).notifications
    assert created.notification_id not in {n.notification_id for n in functions}

    deleted = client.delete_notification(DeleteNotificationRequest(notification_id=created.notification_id))
    assert deleted.status_code == 200
    assert (
        client.list_notifications(
            ListNotificationsRequest(notification_type="smn", notification_name=name)
        ).notifications
        == []
    )


def test_batch_delete_with_comma_separated_ids(client: Any, live_server: ServerProcess) -> None:
    suffix = uuid.uuid4().hex[:8]
    func = f"urn:fss:local-1:{live_server.creds.project_id}:function:default:hook_{suffix}:latest"
    ids = []
    for i in range(2):
        made = client.create_notification(CreateNotificationRequest(body=CreateNotificationRequestBody(
            notification_name=f"sdk_fun_{suffix}_{i}", operation_type="complete", topic_id=func,
        )))  # fmt: skip
        assert made.notification_type == "fun"
        ids.append(made.notification_id)
    client.delete_notification(DeleteNotificationRequest(notification_id=",".join(ids)))
    left = client.list_notifications(ListNotificationsRequest(notification_type="fun")).notifications
    assert not set(ids) & {n.notification_id for n in left}


def test_sdk_sees_limits_as_client_errors(client: Any, live_server: ServerProcess) -> None:
    too_many = [Operations(service_type=f"S{i}", resource_type="r", trace_names=["op"]) for i in range(101)]
    with pytest.raises(ClientRequestException) as info:
        client.create_notification(CreateNotificationRequest(body=CreateNotificationRequestBody(
            notification_name=f"sdk_limits_{uuid.uuid4().hex[:8]}", operation_type="customized",
            operations=too_many,
        )))  # fmt: skip
    assert info.value.status_code == 400 and info.value.error_code == "CTS.0001"
    assert "at most 100 services" in info.value.error_msg
    with pytest.raises(ClientRequestException) as info:
        client.delete_notification(DeleteNotificationRequest(notification_id="nope1,nope2"))
    assert info.value.status_code == 404 and "nope1, nope2" in info.value.error_msg
    with pytest.raises(ClientRequestException) as info:
        client.list_notifications(ListNotificationsRequest(notification_type="email"))
    assert info.value.status_code == 400
