"""The official ``huaweicloudsdksmn`` SmnClient (v2) against real server processes, unchanged.

``relay_down`` has an SMTP relay configured where nothing listens: email subscriptions are accepted and
their confirmations wait in the outbox, which is all these calls need. The session's shared server has no
relay at all, so it refuses them. Names are unique per run. Every error the SDK raises carries SMN's code.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdksmn.v2 import (
    AddSubscriptionRequest,
    AddSubscriptionRequestBody,
    CancelSubscriptionRequest,
    CreateTopicRequest,
    CreateTopicRequestBody,
    DeleteTopicRequest,
    ListProtocolsRequest,
    ListSubscriptionsByTopicRequest,
    ListSubscriptionsRequest,
    ListTopicDetailsRequest,
    ListTopicsRequest,
    PublishMessageRequest,
    PublishMessageRequestBody,
    SmnClient,
    UpdateTopicRequest,
    UpdateTopicRequestBody,
)

from cts_helpers import admin_sdk_client, sdk_client
from opencts.client.signing import HmacAuth
from opencts.testing.server import ServerProcess

pytestmark = [pytest.mark.sdk, pytest.mark.slow]


def smn_client(server: ServerProcess) -> Any:
    return admin_sdk_client(SmnClient, server)


@pytest.fixture
def client(relay_down: ServerProcess) -> Any:
    return smn_client(relay_down)


def new_topic(client: Any) -> str:
    name = f"sdk-{uuid.uuid4().hex[:10]}"
    created = client.create_topic(CreateTopicRequest(body=CreateTopicRequestBody(name=name, display_name="")))
    return str(created.topic_urn)


def test_every_smn_call_the_cts_uses(client: Any, relay_down: ServerProcess) -> None:
    live_server = relay_down
    name = f"sdk-{uuid.uuid4().hex[:10]}"
    created = client.create_topic(
        CreateTopicRequest(body=CreateTopicRequestBody(name=name, display_name="SDK topic"))
    )
    urn = created.topic_urn
    assert urn == f"urn:smn:local-1:{live_server.creds.project_id}:{name}" and created.request_id

    listed = client.list_topics(ListTopicsRequest(name=name, limit=10))
    assert listed.topic_count == 1 and listed.topics[0].topic_urn == urn
    assert listed.topics[0].push_policy == 0

    detail = client.list_topic_details(ListTopicDetailsRequest(topic_urn=urn))
    assert detail.name == name and detail.display_name == "SDK topic" and len(detail.topic_id) == 32

    client.update_topic(
        UpdateTopicRequest(topic_urn=urn, body=UpdateTopicRequestBody(display_name="Renamed"))
    )
    assert client.list_topic_details(ListTopicDetailsRequest(topic_urn=urn)).display_name == "Renamed"

    added = client.add_subscription(
        AddSubscriptionRequest(
            topic_urn=urn,
            body=AddSubscriptionRequestBody(protocol="email", endpoint="sdk@example.com", remark="from sdk"),
        )
    )
    sub = added.subscription_urn
    assert sub.startswith(urn + ":")

    by_topic = client.list_subscriptions_by_topic(ListSubscriptionsByTopicRequest(topic_urn=urn))
    assert by_topic.subscription_count == 1
    item = by_topic.subscriptions[0]
    assert (item.subscription_urn, item.status, item.protocol, item.remark) == (sub, 0, "email", "from sdk")

    everything = client.list_subscriptions(ListSubscriptionsRequest(endpoint="sdk@example.com", status=0))
    assert sub in [s.subscription_urn for s in everything.subscriptions]

    structure = orjson.dumps({"default": "d", "email": "e"}).decode()
    published = client.publish_message(
        PublishMessageRequest(
            topic_urn=urn,
            body=PublishMessageRequestBody(subject="s", message_structure=structure, time_to_live="120"),
        )
    )
    assert len(published.message_id) == 32

    protocols = client.list_protocols(ListProtocolsRequest())
    assert protocols.protocols == ["email", "sms", "http", "https"]

    client.cancel_subscription(CancelSubscriptionRequest(subscription_urn=sub))
    assert (
        client.list_subscriptions_by_topic(ListSubscriptionsByTopicRequest(topic_urn=urn)).subscription_count
        == 0
    )

    client.delete_topic(DeleteTopicRequest(topic_urn=urn))
    with pytest.raises(ClientRequestException) as info:
        client.list_topic_details(ListTopicDetailsRequest(topic_urn=urn))
    assert info.value.status_code == 404 and info.value.error_code == "SMN.00010008"
    assert urn in info.value.error_msg and info.value.request_id


def test_sdk_sees_validation_errors_as_client_errors(client: Any) -> None:
    with pytest.raises(ClientRequestException) as info:
        client.create_topic(CreateTopicRequest(body=CreateTopicRequestBody(name="-bad", display_name="x")))
    assert info.value.status_code == 400 and info.value.error_code == "SMN.00010001"
    assert "name" in info.value.error_msg


def test_sdk_errors_carry_smn_codes(client: Any, relay_down: ServerProcess) -> None:
    urn = new_topic(client)
    with pytest.raises(ClientRequestException) as info:
        client.create_topic(CreateTopicRequest(body=CreateTopicRequestBody(name=urn.rsplit(":", 1)[1])))
    assert (info.value.status_code, info.value.error_code) == (409, "SMN.00010006")
    with pytest.raises(ClientRequestException) as info:
        client.cancel_subscription(CancelSubscriptionRequest(subscription_urn=f"{urn}:{'0' * 32}"))
    assert (info.value.status_code, info.value.error_code) == (404, "SMN.00011027")
    with pytest.raises(ClientRequestException) as info:
        body = AddSubscriptionRequestBody(protocol="http", endpoint="http://[::ffff:127.0.0.1]:9/hook")
        client.add_subscription(AddSubscriptionRequest(topic_urn=urn, body=body))
    assert (info.value.status_code, info.value.error_code) == (400, "SMN.00011001")
    creds = relay_down.creds
    stranger = sdk_client(SmnClient, relay_down.url, creds.access_key, "wrong" * 8, creds.project_id)
    with pytest.raises(ClientRequestException) as info:
        stranger.list_topics(ListTopicsRequest())
    assert (info.value.status_code, info.value.error_code) == (401, "SMN.00010002")


def test_without_smtp_the_sdk_is_refused_an_email_subscription(live_server: ServerProcess) -> None:
    client = smn_client(live_server)
    urn = new_topic(client)
    for protocol, endpoint, setting in (
        ("email", "sdk@example.com", "OPENCTS_SMTP_HOST"),
        ("sms", "+8613800000000", "OPENCTS_SMS_GATEWAY_URL"),
    ):
        with pytest.raises(ClientRequestException) as info:
            body = AddSubscriptionRequestBody(protocol=protocol, endpoint=endpoint)
            client.add_subscription(AddSubscriptionRequest(topic_urn=urn, body=body))
        assert (info.value.status_code, info.value.error_code) == (400, "SMN.00011002")
        assert setting in info.value.error_msg
    listed = client.list_subscriptions_by_topic(ListSubscriptionsByTopicRequest(topic_urn=urn))
    assert listed.subscription_count == 0


def test_a_topic_a_notification_uses_cannot_be_deleted(client: Any, relay_down: ServerProcess) -> None:
    urn = new_topic(client)
    creds = relay_down.creds
    name = f"uses_{uuid.uuid4().hex[:8]}"
    notification = {
        "notification_name": name,
        "operation_type": "complete",
        "topic_id": urn,
        "status": "enabled",
    }
    auth = HmacAuth(creds.access_key, creds.secret_key, project_id=creds.project_id)
    with httpx.Client(base_url=relay_down.url, auth=auth) as cts:
        made = cts.post(f"/v3/{creds.project_id}/notifications", json=notification)
        assert made.status_code in (200, 201), made.text
        with pytest.raises(ClientRequestException) as info:
            client.delete_topic(DeleteTopicRequest(topic_urn=urn))
        assert (info.value.status_code, info.value.error_code) == (409, "SMN.00010013")
        assert name in info.value.error_msg
        assert client.list_topic_details(ListTopicDetailsRequest(topic_urn=urn)).topic_urn == urn
        # pointed elsewhere, the notification lets the topic go
        other = new_topic(client)
        moved = cts.put(f"/v3/{creds.project_id}/notifications", json={
            **notification, "notification_id": made.json()["notification_id"], "topic_id": other
        })  # fmt: skip
        assert moved.status_code == 200, moved.text
    client.delete_topic(DeleteTopicRequest(topic_urn=urn))
    with pytest.raises(ClientRequestException) as info:
        client.list_topic_details(ListTopicDetailsRequest(topic_urn=urn))
    assert info.value.error_code == "SMN.00010008"
