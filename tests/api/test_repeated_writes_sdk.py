"""The official SDKs may send the same write twice within a second, and get what the cloud answers.

``X-Sdk-Date`` has one-second resolution, so two identical calls in one second carry one signature. The
cloud APIs bound replays by the 15-minute date window only, so both calls reach the service and get the
answer a repeat gets there: a second publish is a second message, a second tagging sets the same tags, a
second delete finds nothing (404). Each pair is sent again on a fresh resource if a second boundary fell
between its two calls (then the signatures differ and the pair proves nothing).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcts.v3 import (
    BatchCreateResourceTagsRequest,
    BatchCreateResourceTagsRequestBody,
    CreateTrackerRequest,
    CreateTrackerRequestBody,
    CtsClient,
    DataBucket,
    DeleteTrackerRequest,
    ListTrackersRequest,
    Tags,
    TrackerObsInfo,
)
from huaweicloudsdksmn.v2 import (
    CreateTopicRequest,
    CreateTopicRequestBody,
    DeleteTopicRequest,
    PublishMessageRequest,
    PublishMessageRequestBody,
    SmnClient,
)

from cts_helpers import admin_sdk_client
from opencts.testing.server import ServerProcess

pytestmark = [pytest.mark.sdk, pytest.mark.slow]
S = TypeVar("S")
Outcome = Any  # the SDK's response, or the ClientRequestException it raised


def _outcome(call: Callable[[S], Any], state: S) -> Outcome:
    try:
        return call(state)
    except ClientRequestException as exc:
        return exc


def twice_in_one_second(setup: Callable[[], S], call: Callable[[S], Any]) -> tuple[Outcome, Outcome]:
    """``call(state)`` twice, both signed within one wall-clock second, on a fresh ``setup()`` each try."""
    for _ in range(8):
        state = setup()
        started = time.time()
        first, second = _outcome(call, state), _outcome(call, state)
        if int(started) == int(time.time()):
            return first, second
    pytest.fail("no two calls fitted in one second in eight tries")


def failed(outcome: Outcome, status: int) -> bool:
    return isinstance(outcome, ClientRequestException) and outcome.status_code == status


@pytest.fixture
def smn(live_server: ServerProcess) -> Any:
    return admin_sdk_client(SmnClient, live_server)


@pytest.fixture
def cts(live_server: ServerProcess) -> Any:
    return admin_sdk_client(CtsClient, live_server)


def new_topic(smn: Any) -> str:
    name = f"twice-{uuid.uuid4().hex[:10]}"
    urn: str = smn.create_topic(
        CreateTopicRequest(body=CreateTopicRequestBody(name=name, display_name="twice"))
    ).topic_urn
    return urn


def new_tracker(cts: Any) -> tuple[str, str]:
    name = f"twice-{uuid.uuid4().hex[:8]}"
    created = cts.create_tracker(
        CreateTrackerRequest(
            body=CreateTrackerRequestBody(
                tracker_type="data",
                tracker_name=name,
                obs_info=TrackerObsInfo(bucket_name="twice-out", file_prefix_name="t"),
                data_bucket=DataBucket(data_bucket_name="twice-watched", data_event=["WRITE"]),
            )
        )
    )
    return name, created.id


def test_the_same_message_published_twice_in_a_second_is_two_messages(smn: Any) -> None:
    structure = orjson.dumps({"default": "the same words"}).decode()
    body = PublishMessageRequestBody(subject="s", message_structure=structure, time_to_live="120")
    first, second = twice_in_one_second(
        lambda: new_topic(smn),
        lambda urn: smn.publish_message(PublishMessageRequest(topic_urn=urn, body=body)),
    )
    assert not isinstance(first, Exception) and not isinstance(second, Exception), (first, second)
    assert len(first.message_id) == len(second.message_id) == 32
    assert first.message_id != second.message_id


def test_a_topic_deleted_twice_in_a_second_is_deleted_then_not_found(smn: Any) -> None:
    first, second = twice_in_one_second(
        lambda: new_topic(smn), lambda urn: smn.delete_topic(DeleteTopicRequest(topic_urn=urn))
    )
    assert not isinstance(first, Exception), first
    assert failed(second, 404), second


def test_a_tracker_tagged_twice_then_deleted_twice_in_a_second(cts: Any) -> None:
    tags = BatchCreateResourceTagsRequestBody(tags=[Tags(key="env", value="twice")])

    def tag(tracker: tuple[str, str]) -> Any:
        request = BatchCreateResourceTagsRequest(
            resource_id=tracker[1], resource_type="cts-tracker", body=tags
        )
        return cts.batch_create_resource_tags(request)

    tracker = new_tracker(cts)  # tagging can be repeated: every try may use the same tracker
    first, second = twice_in_one_second(lambda: tracker, tag)
    assert not isinstance(first, Exception) and not isinstance(second, Exception), (first, second)
    assert first.status_code == second.status_code == 200

    def delete(tracker: tuple[str, str]) -> Any:
        return cts.delete_tracker(DeleteTrackerRequest(tracker_name=tracker[0], tracker_type="data"))

    first, second = twice_in_one_second(lambda: new_tracker(cts), delete)
    assert not isinstance(first, Exception) and first.status_code == 200, first
    assert failed(second, 404), second
    assert cts.list_trackers(ListTrackersRequest(tracker_name=tracker[0])).trackers[0].id == tracker[1]
