"""Notification request bodies: every documented limit is refused with a message that names it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from opencts.notifications.model import (
    CreateNotificationRequestBody,
    Filter,
    UpdateNotificationRequestBody,
    parse_rule,
    parse_topic_id,
)
from opencts.validation import describe

TOPIC = "urn:smn:local-1:p1:alarms"


def body(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "notification_name": "key_ops",
        "operation_type": "customized",
        "operations": [{"service_type": "IAM", "resource_type": "user", "trace_names": ["login"]}],
        "topic_id": TOPIC,
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


def refused(doc: dict[str, Any], model: type[Any] = CreateNotificationRequestBody) -> str:
    with pytest.raises(ValidationError) as info:
        model.model_validate(doc)
    return describe(info.value)


def ops(services: int, names_each: int, resource: str = "thing") -> list[dict[str, Any]]:
    return [
        {
            "service_type": f"S{s}",
            "resource_type": resource,
            "trace_names": [f"op{i}" for i in range(names_each)],
        }
        for s in range(services)
    ]


def test_a_minimal_body_and_its_stored_config() -> None:
    made = CreateNotificationRequestBody.model_validate(
        body(
            operations=[
                {"service_type": "IAM", "resource_type": "user", "trace_names": ["login", "logout"]},
                {"service_type": "IAM", "resource_type": "user", "trace_names": ["login", "changePassword"]},
            ],
            notify_user_list=[{"user_group": "admin", "user_list": ["alice", "bob", "alice"]}],
            filter={"condition": "AND", "is_support_filter": True, "rule": ["code = 200"]},
            agency_name="cts_admin_trust",
        )
    )
    assert made.status == "enabled"
    assert made.topic is not None and made.topic.kind == "smn" and made.topic.project_id == "p1"
    assert made.config() == {
        "operations": [
            {
                "service_type": "IAM",
                "resource_type": "user",
                "trace_names": ["login", "logout", "changePassword"],
            }
        ],
        "notify_user_list": [{"user_group": "admin", "user_list": ["alice", "bob"]}],
        "filter": {"condition": "AND", "is_support_filter": True, "rule": ["code = 200"]},
        "agency_name": "cts_admin_trust",
    }


@pytest.mark.parametrize(
    ("name", "ok"),
    [("a", True), ("A_b_9", True), ("x" * 64, True), ("x" * 65, False), ("", False), ("has-dash", False),
     ("has space", False), ("ünï", False)],
)  # fmt: skip
def test_notification_name_is_64_letters_digits_and_underscores(name: str, ok: bool) -> None:
    if ok:
        CreateNotificationRequestBody.model_validate(body(notification_name=name))
    else:
        assert "notification_name" in refused(body(notification_name=name))


def test_operation_type_rules() -> None:
    assert "operation_type" in refused(body(operation_type="typical"))
    assert "customized needs at least one" in refused(body(operations=[]))
    assert "customized needs at least one" in refused(body(operations=None))
    complete = CreateNotificationRequestBody.model_validate(body(operation_type="complete", operations=None))
    assert complete.config()["operations"] == []
    CreateNotificationRequestBody.model_validate(body(operation_type="complete", operations=[]))
    assert "complete already means every operation" in refused(body(operation_type="complete"))


def test_at_most_1000_operations_of_100_services() -> None:
    CreateNotificationRequestBody.model_validate(body(operations=ops(100, 10)))
    assert "at most 1000 operations; operations name 1001" in refused(
        body(
            operations=[*ops(100, 10), {"service_type": "IAM", "resource_type": "user", "trace_names": ["x"]}]
        )
    )
    assert "at most 100 services; operations name 101" in refused(body(operations=ops(101, 1)))
    # the same operation named twice counts once
    twice = ops(100, 10) + ops(1, 10)
    CreateNotificationRequestBody.model_validate(body(operations=twice))


@pytest.mark.parametrize(
    ("operation", "where"),
    [
        ({"service_type": "iam", "resource_type": "user", "trace_names": ["login"]}, "service_type"),
        ({"service_type": "IAM", "resource_type": "", "trace_names": ["login"]}, "resource_type"),
        ({"service_type": "IAM", "resource_type": "user", "trace_names": []}, "trace_names"),
        ({"service_type": "IAM", "resource_type": "user", "trace_names": ["1login"]}, "trace_names.0"),
        ({"service_type": "IAM", "resource_type": "user", "trace_names": ["x" * 65]}, "trace_names.0"),
        ({"service_type": "IAM", "resource_type": "user"}, "trace_names: is required"),
        ({"service_type": "IAM", "resource_type": "user", "trace_names": ["a"], "x": 1}, "x: is not a field"),
    ],
)
def test_each_operation_is_checked(operation: dict[str, Any], where: str) -> None:
    assert where in refused(body(operations=[operation]))


def test_at_most_10_groups_and_50_users() -> None:
    groups: list[dict[str, Any]] = [
        {"user_group": f"g{i}", "user_list": [f"u{i}_{j}" for j in range(5)]} for i in range(10)
    ]
    CreateNotificationRequestBody.model_validate(body(notify_user_list=groups))
    eleven = [*groups, {"user_group": "g10", "user_list": ["z"]}]
    assert "at most 10 user groups, not 11" in refused(body(notify_user_list=eleven))
    groups[0]["user_list"].append("one_more")
    assert "at most 50 users in total, not 51" in refused(body(notify_user_list=groups))
    assert "user_list" in refused(body(notify_user_list=[{"user_group": "g", "user_list": []}]))
    assert "user_group" in refused(body(notify_user_list=[{"user_list": ["a"]}]))


@pytest.mark.parametrize(
    ("rule", "parsed"),
    [
        ("code = 200", ("code", "=", "200")),
        ("code!=200", ("code", "!=", "200")),
        ("  trace_rating   =  incident ", ("trace_rating", "=", "incident")),
        ("resource_name != my web server", ("resource_name", "!=", "my web server")),
        ("api_version = v3.1", ("api_version", "=", "v3.1")),
        ("trace_type = ConsoleAction", ("trace_type", "=", "ConsoleAction")),
        ("resource_id = a=b", ("resource_id", "=", "a=b")),
    ],
)
def test_filter_rules_parse(rule: str, parsed: tuple[str, str, str]) -> None:
    assert parse_rule(rule) == parsed


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("code > 200", "must read '<field> = <value>'"),
        ("user = alice", "field 'user' is not one of api_version, code"),
        ("code = ", "the value is empty"),
        ("trace_rating = fatal", "trace_rating must be one of normal, warning, incident"),
        ("trace_type = ObsSDK", "trace_type must be one of ConsoleAction, ApiCall, SystemAction"),
        ("api_version = v 1", "api_version is 1-64 letters"),
        ("api_version = " + "v" * 65, "at most 64 characters"),
        ("code = " + "5" * 257, "at most 256 characters"),
        ("resource_id = " + "r" * 351, "at most 350 characters"),
        ("resource_name = " + "n" * 257, "at most 256 characters"),
        ("code = 2\x0000", "control character"),
    ],
)
def test_bad_filter_rules_say_why(rule: str, message: str) -> None:
    assert message in refused(body(filter={"condition": "OR", "is_support_filter": True, "rule": [rule]}))


def test_filter_shape() -> None:
    seven = {"condition": "AND", "is_support_filter": True, "rule": ["code = 200"] * 7}
    assert "filter.rule: List should have at most 6 items" in refused(body(filter=seven))
    assert "filter.condition" in refused(
        body(filter={"condition": "XOR", "is_support_filter": True, "rule": []})
    )
    assert "at least one rule" in refused(
        body(filter={"condition": "AND", "is_support_filter": True, "rule": []})
    )
    assert "is_support_filter" in refused(body(filter={"condition": "AND", "rule": ["code = 1"]}))
    off = Filter.model_validate({"condition": "AND", "is_support_filter": False, "rule": []})
    assert off.parsed() == ()
    assert "filter.is_support_filter" in refused(
        body(filter={"condition": "AND", "is_support_filter": "true", "rule": ["code = 1"]})
    )


def test_topic_ids() -> None:
    fun = parse_topic_id("urn:fss:local-1:p1:function:default:audit_hook:latest")
    assert (fun.kind, fun.project_id, fun.name) == ("fun", "p1", "default:audit_hook")
    assert parse_topic_id("urn:fss:local-1:p1:function:default:audit_hook").kind == "fun"
    for bad in ("alarms", "urn:smn:local-1:p1", "urn:smn:local-1:p1:-x", "urn:fss:r:p1:function:default"):
        assert "neither an SMN topic URN" in refused(body(topic_id=bad))
    CreateNotificationRequestBody.model_validate(body(topic_id=None))


def test_agency_and_unknown_fields() -> None:
    assert "agency_name" in refused(body(agency_name="other_agency"))
    assert "notify_users: is not a field" in refused(body(notify_users=[]))
    assert "notification_name: is required" in refused(body(notification_name=None))


def test_update_needs_id_status_and_a_topic_when_enabled() -> None:
    ok = body(notification_id="n1", status="enabled")
    UpdateNotificationRequestBody.model_validate(ok)
    no_topic = {k: v for k, v in ok.items() if k != "topic_id"}
    assert "topic_id is required when status is enabled" in refused(no_topic, UpdateNotificationRequestBody)
    UpdateNotificationRequestBody.model_validate({**no_topic, "status": "disabled"})
    assert "status" in refused({**ok, "status": "paused"}, UpdateNotificationRequestBody)
    assert "status: is required" in refused(
        {k: v for k, v in ok.items() if k != "status"}, UpdateNotificationRequestBody
    )
    assert "notification_id: is required" in refused(
        {k: v for k, v in ok.items() if k != "notification_id"}, UpdateNotificationRequestBody
    )
