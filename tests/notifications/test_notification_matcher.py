"""The compiled matcher: the operation index, user lists, AND/OR filters with = and !=, complete ones."""

from __future__ import annotations

import random
from typing import Any

from opencts.notifications.matcher import Matcher, Notification, compile_matcher, passes_filter


def notification(
    nid: str,
    *,
    ops: list[tuple[str, str, str]] | None = None,
    users: list[str] | None = None,
    condition: str = "AND",
    rules: list[str] | None = None,
    filter_on: bool = True,
) -> Notification:
    config: dict[str, Any] = {
        "operations": [{"service_type": s, "resource_type": r, "trace_names": [t]} for s, r, t in ops or []],
        "notify_user_list": [{"user_group": "g", "user_list": users}] if users else [],
        "filter": {"condition": condition, "is_support_filter": filter_on, "rule": rules} if rules else None,
    }
    return Notification.from_config(
        notification_id=nid,
        project_id="p1",
        name=nid,
        notification_type="smn",
        topic_id="urn:smn:local-1:p1:t",
        operation_type="customized" if ops else "complete",
        config=config,
    )


def trace(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "trace_id": "t1",
        "trace_name": "login",
        "trace_type": "ConsoleAction",
        "trace_rating": "normal",
        "service_type": "IAM",
        "resource_type": "user",
        "resource_id": "u-1",
        "resource_name": "alice",
        "user": {"name": "alice", "domain": {"name": "acme"}},
        "code": "200",
        "api_version": "v3",
        "source_ip": "10.0.0.1",
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


def ids(matcher: Matcher, t: dict[str, Any]) -> list[str]:
    return sorted(n.notification_id for n in matcher.match(t))


LOGIN = ("IAM", "user", "login")


def test_the_index_matches_exact_operations_only() -> None:
    m = compile_matcher([
        notification("login", ops=[LOGIN]),
        notification("sg", ops=[("VPC", "securityGroup", "deleteSecurityGroupRule")]),
        notification("both", ops=[LOGIN, ("VPC", "securityGroup", "deleteSecurityGroupRule")]),
    ])  # fmt: skip
    assert ids(m, trace()) == ["both", "login"]
    assert ids(m, trace(service_type="VPC", resource_type="securityGroup",
                        trace_name="deleteSecurityGroupRule")) == ["both", "sg"]  # fmt: skip
    assert ids(m, trace(trace_name="logout")) == []
    assert ids(m, trace(resource_type="group")) == []
    assert ids(m, trace(resource_type=None)) == []
    assert ids(m, trace(service_type="iam")) == [], "exact, case-sensitive, as CTS console search"
    assert ids(m, trace(trace_name="Login")) == []


def test_complete_matches_every_operation() -> None:
    m = compile_matcher([notification("all"), notification("login", ops=[LOGIN])])
    assert ids(m, trace()) == ["all", "login"]
    assert ids(m, trace(service_type="ECS", resource_type="ecs", trace_name="createServer")) == ["all"]
    assert ids(m, {"trace_id": "bare"}) == ["all"], "even a trace without service or resource"


def test_user_lists() -> None:
    m = compile_matcher([
        notification("ab", ops=[LOGIN], users=["alice", "bob"]),
        notification("carol", ops=[LOGIN], users=["carol"]),
        notification("anyone", ops=[LOGIN]),
        notification("all_bob", users=["bob"]),
    ])  # fmt: skip
    assert ids(m, trace()) == ["ab", "anyone"]
    assert ids(m, trace(user={"name": "bob"})) == ["ab", "all_bob", "anyone"]
    assert ids(m, trace(user={"name": "carol"})) == ["anyone", "carol"]
    assert ids(m, trace(user={"user_name": "carol"})) == ["anyone", "carol"], "user_name also names the user"
    assert ids(m, trace(user={"name": "mallory"})) == ["anyone"]
    assert ids(m, trace(user=None)) == ["anyone"], "a trace without a user matches no user list"
    assert ids(m, trace(user={"id": "x"})) == ["anyone"]


def test_filters_and_or_with_equal_and_not_equal() -> None:
    m = compile_matcher([
        notification("ok_only", ops=[LOGIN], rules=["code = 200"]),
        notification("failed", ops=[LOGIN], rules=["code != 200"]),
        notification("and", ops=[LOGIN], condition="AND", rules=["code = 200", "trace_type = ConsoleAction"]),
        notification("or", ops=[LOGIN], condition="OR",
                     rules=["trace_rating = incident", "resource_name = root"]),
        notification("off", ops=[LOGIN], rules=["code = 999"], filter_on=False),
    ])  # fmt: skip
    assert ids(m, trace()) == ["and", "off", "ok_only"]
    assert ids(m, trace(code="401")) == ["failed", "off"]
    assert ids(m, trace(trace_type="ApiCall")) == ["off", "ok_only"]
    assert ids(m, trace(trace_rating="incident", code="500")) == ["failed", "off", "or"]
    assert ids(m, trace(resource_name="root")) == ["and", "off", "ok_only", "or"]


def test_filter_values_compare_as_strings_and_missing_fields() -> None:
    m = compile_matcher([
        notification("is200", ops=[LOGIN], rules=["code = 200"]),
        notification("not_v3", ops=[LOGIN], rules=["api_version != v3"]),
        notification("rid", ops=[LOGIN], rules=["resource_id = u-1"]),
    ])  # fmt: skip
    assert ids(m, trace(code=200)) == ["is200", "rid"], "an int code (unnormalised) still compares as text"
    assert ids(m, trace(code=None)) == ["rid"]
    assert ids(m, trace(api_version=None)) == ["is200", "not_v3", "rid"], "a missing field is != anything"
    assert ids(m, trace(resource_id=None, api_version="v2")) == ["is200", "not_v3"]


def test_no_notifications_and_only_unrelated_ones() -> None:
    assert compile_matcher([]).empty and compile_matcher([]).match(trace()) == []
    m = compile_matcher([notification("x", ops=[("ECS", "ecs", "deleteServer")])])
    assert not m.empty and m.match(trace()) == []


def test_each_notification_at_most_once_per_trace() -> None:
    n = notification("dup", ops=[LOGIN, LOGIN], users=["alice", "alice"])
    assert [x.notification_id for x in compile_matcher([n]).match(trace())] == ["dup"]


def test_index_cost_does_not_depend_on_the_number_of_notifications() -> None:
    """100 notifications x 1,000 operations: a trace outside all of them reaches no notification at all."""
    many = [
        notification(f"n{i}", ops=[(f"S{s}", "r", f"op{i}_{j}") for s in range(100) for j in range(10)])
        for i in range(100)
    ]
    m = compile_matcher(many)
    assert len(m._index) == 100_000
    assert m.match(trace()) == []
    hit = m.match(trace(service_type="S7", resource_type="r", trace_name="op42_3"))
    assert [n.notification_id for n in hit] == ["n42"]


def test_the_index_agrees_with_checking_every_notification() -> None:
    """Random notifications (complete and customized, users, AND/OR filters) against random traces."""
    rng = random.Random(3)
    opset = [
        ("IAM", "user", "login"),
        ("IAM", "user", "logout"),
        ("VPC", "vpc", "deleteVpc"),
        ("ECS", "ecs", "x"),
    ]
    rules = [
        "code = 200",
        "code != 200",
        "trace_rating = warning",
        "trace_type != ApiCall",
        "resource_name = a",
    ]
    many = []
    for i in range(40):
        complete = rng.random() < 0.2
        many.append(
            notification(
                f"n{i}",
                ops=None if complete else rng.sample(opset, rng.randint(1, 3)),
                users=rng.sample(["alice", "bob", "carol"], rng.randint(1, 2))
                if rng.random() < 0.5
                else None,
                condition=rng.choice(("AND", "OR")),
                rules=rng.sample(rules, rng.randint(1, 3)) if rng.random() < 0.6 else None,
            )
        )
    m = compile_matcher(many)
    for _ in range(2000):
        s, r, t = rng.choice([*opset, ("OBS", "bucket", "deleteBucket")])
        tr = trace(
            service_type=s, resource_type=r, trace_name=t, code=rng.choice(["200", "403", 200]),
            trace_rating=rng.choice(["normal", "warning"]),
            trace_type=rng.choice(["ApiCall", "ConsoleAction"]), resource_name=rng.choice(["a", "b", None]),
            user=rng.choice([{"name": "alice"}, {"name": "dave"}, None]),
        )  # fmt: skip
        key = (s, r, t)
        user = (tr.get("user") or {}).get("name")
        expected = sorted(
            n.notification_id
            for n in many
            if (n.operation_type == "complete" or key in n.operations)
            and (n.users is None or user in n.users)
            and passes_filter(n, tr)
        )
        assert ids(m, tr) == expected, tr
