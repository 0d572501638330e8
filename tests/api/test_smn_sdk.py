"""The official ``huaweicloudsdksmn`` SmnClient (v2) against a real server process, unchanged.

The live server has no SMTP relay: email subscriptions are accepted and their confirmations wait in the
outbox, which is all these calls need. Names are unique per run (the server is shared by the session).
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
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

from conftest import LiveServer

pytestmark = [pytest.mark.sdk, pytest.mark.slow]


@pytest.fixture
def client(live_server: LiveServer) -> Any:
    creds = live_server.creds
    return (
        SmnClient.new_builder()
        .with_http_config(HttpConfig.get_default_config())
        .with_credentials(BasicCredentials(creds.access_key, creds.secret_key, creds.project_id))
        .with_endpoint(live_server.url)
        .build()
    )


def test_every_smn_call_the_cts_uses(client: Any, live_server: LiveServer) -> None:
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
    assert info.value.status_code == 404 and info.value.error_code == "CTS.0404"


def test_sdk_sees_validation_errors_as_client_errors(client: Any) -> None:
    with pytest.raises(ClientRequestException) as info:
        client.create_topic(CreateTopicRequest(body=CreateTopicRequestBody(name="-bad", display_name="x")))
    assert info.value.status_code == 400 and info.value.error_code == "CTS.0001"
    assert "name" in info.value.error_msg
