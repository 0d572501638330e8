"""Key-event notifications over signed HTTP, in process: every route and limit, batch delete, list by type."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection

from cts_helpers import Api, create_member, signed_client
from opencts.api import notifications as routes
from opencts.api.deps import Services
from opencts.iam import projects
from opencts.smn import topics
from opencts.smn.model import CreateTopic

PATH = "notifications"
LOGIN = {"service_type": "IAM", "resource_type": "user", "trace_names": ["login"]}


def url(api: Api, path: str = PATH, project: str | None = None) -> str:
    return f"/v3/{project or api.project}/{path}"


def assert_error(resp: httpx.Response, status: int, code: str, message: str = "") -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error_code"] == code
    assert message in body["error_msg"], body["error_msg"]


async def topic(api: Api, name: str = "alarms") -> str:
    resp = await api.client.post(
        f"/v2/{api.project}/notifications/topics", json={"name": name, "display_name": name}
    )
    assert resp.status_code < 300, resp.text
    return str(resp.json()["topic_urn"])


def body(name: str, topic_id: str | None, **extra: Any) -> dict[str, Any]:
    doc = {
        "notification_name": name,
        "operation_type": "customized",
        "operations": [LOGIN],
        "topic_id": topic_id,
    }
    doc.update(extra)
    return {k: v for k, v in doc.items() if v is not None}


async def create(api: Api, doc: dict[str, Any]) -> httpx.Response:
    return await api.client.post(url(api), json=doc)


async def listed(api: Api, kind: str = "smn", **params: str) -> list[dict[str, Any]]:
    resp = await api.client.get(url(api, f"{PATH}/{kind}"), params=params)
    assert resp.status_code == 200, resp.text
    found: list[dict[str, Any]] = resp.json()["notifications"]
    return found


def services(api: Api) -> Services:
    found: Services = api.app.state.services
    return found


async def test_create_list_update_delete_round_trip(api: Api) -> None:
    urn = await topic(api)
    doc = body(
        "key_logins", urn,
        notify_user_list=[{"user_group": "admins", "user_list": ["alice", "bob"]}],
        filter={"condition": "OR", "is_support_filter": True,
                "rule": ["code != 200", "trace_rating = incident"]},
        agency_name="cts_admin_trust",
    )  # fmt: skip
    resp = await create(api, doc)
    assert resp.status_code == 201, resp.text
    made = resp.json()
    assert set(made) == {
        "notification_id", "notification_name", "operation_type", "operations", "notify_user_list",
        "agency_name", "status", "topic_id", "notification_type", "project_id", "create_time", "filter",
    }  # fmt: skip
    assert made["notification_name"] == "key_logins" and made["status"] == "enabled"
    assert (
        made["notification_type"] == "smn" and made["topic_id"] == urn and made["project_id"] == api.project
    )
    assert made["operations"] == [LOGIN] and made["notify_user_list"] == doc["notify_user_list"]
    assert made["filter"] == doc["filter"] and made["agency_name"] == "cts_admin_trust"
    assert isinstance(made["create_time"], int) and len(str(made["create_time"])) == 13
    assert await listed(api) == [made]
    assert await listed(api, notification_name="key_logins") == [made]
    assert await listed(api, notification_name="other") == []
    assert await listed(api, "fun") == []

    update = {**body("key_logins_v2", None, operation_type="complete", operations=None),
              "notification_id": made["notification_id"], "status": "disabled"}  # fmt: skip
    resp = await api.client.put(url(api), json=update)
    assert resp.status_code == 200, resp.text
    changed = resp.json()
    assert changed["notification_name"] == "key_logins_v2" and changed["status"] == "disabled"
    assert changed["operation_type"] == "complete" and changed["operations"] == []
    assert changed["topic_id"] == urn, "a disabled update without topic_id keeps the topic"
    assert changed["filter"] is None and changed["notify_user_list"] == []
    assert changed["create_time"] == made["create_time"]
    assert await listed(api) == [changed]

    resp = await api.client.delete(url(api), params={"notification_id": made["notification_id"]})
    assert resp.status_code == 200 and resp.json() == {}
    assert await listed(api) == []


async def test_function_urns_are_type_fun(api: Api) -> None:
    func = f"urn:fss:local-1:{api.project}:function:default:audit_hook:latest"
    resp = await create(api, body("to_function", func))
    assert resp.status_code == 201, resp.text
    assert resp.json()["notification_type"] == "fun"
    assert [n["notification_name"] for n in await listed(api, "fun")] == ["to_function"]
    assert await listed(api, "smn") == []
    other = f"urn:fss:local-1:{'f' * 32}:function:default:audit_hook"
    assert_error(await create(api, body("other_func", other)), 400, "CTS.0001", "belongs to project ffff")


async def test_topic_must_exist_in_the_callers_project(api: Api) -> None:
    missing = f"urn:smn:local-1:{api.project}:no_such_topic"
    assert_error(
        await create(api, body("n1", missing)), 400, "CTS.0001", f"topic_id {missing}: there is no SMN"
    )
    domain = api.creds.domain_id

    def other_project(conn: Connection) -> tuple[str, str]:
        project = projects.create_project(conn, domain_id=domain, name="local-2").id
        urn = topics.create(
            conn, project_id=project, region="local-1", body=CreateTopic(name="theirs"), now=0
        )
        return project, urn

    other, foreign = services(api).db.write_sync(other_project)
    assert_error(await create(api, body("n1", foreign)), 400, "CTS.0001", f"belongs to project {other}")
    assert_error(await create(api, body("n1", "alarms")), 400, "CTS.0001", "neither an SMN topic URN")
    resp = await create(api, body("no_topic_yet", None))
    assert resp.status_code == 201 and resp.json()["topic_id"] is None


async def test_names_are_unique_per_project(api: Api) -> None:
    urn = await topic(api)
    first = (await create(api, body("dup", urn))).json()
    again = body("dup", urn, operation_type="complete", operations=None)
    assert_error(await create(api, again), 409, "CTS.0409", "'dup' already exists")
    second = (await create(api, body("other", urn))).json()
    rename = {**body("dup", urn), "notification_id": second["notification_id"], "status": "enabled"}
    assert_error(await api.client.put(url(api), json=rename), 409, "CTS.0409", "'dup' already exists")
    same = {**body("dup", urn), "notification_id": first["notification_id"], "status": "enabled"}
    assert (await api.client.put(url(api), json=same)).status_code == 200


async def test_at_most_100_notifications_per_project(api: Api) -> None:
    urn = await topic(api)
    for i in range(100):
        resp = await create(api, body(f"n{i}", urn))
        assert resp.status_code == 201, resp.text
    assert_error(await create(api, body("n100", urn)), 400, "CTS.0412", "at most 100 key-event notifications")
    assert len(await listed(api)) == 100


def many_ops(services_: int, names: int) -> list[dict[str, Any]]:
    return [{"service_type": f"S{s}", "resource_type": "r", "trace_names": [f"op{i}" for i in range(names)]}
            for s in range(services_)]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"operations": many_ops(101, 1)}, "at most 100 services; operations name 101"),
        ({"operations": many_ops(1, 1001)}, "trace_names: List should have at most 1000 items"),
        ({"operations": [*many_ops(100, 10), {**many_ops(1, 1)[0], "trace_names": ["x"]}]},
         "at most 1000 operations; operations name 1001"),
        ({"operations": []}, "customized needs at least one entry in operations"),
        ({"notify_user_list": [{"user_group": f"g{i}", "user_list": ["u"]} for i in range(11)]},
         "at most 10 user groups, not 11"),
        ({"notify_user_list": [{"user_group": "g", "user_list": [f"u{i}" for i in range(51)]}]},
         "user_list: List should have at most 50 items"),
        ({"notify_user_list": [{"user_group": f"g{j}", "user_list": [f"u{j}_{i}" for i in range(26)]}
                               for j in range(2)]}, "at most 50 users in total, not 52"),
        ({"filter": {"condition": "AND", "is_support_filter": True, "rule": ["code = 1"] * 7}},
         "filter.rule: List should have at most 6 items"),
        ({"filter": {"condition": "AND", "is_support_filter": True, "rule": ["user = bob"]}},
         "field 'user' is not one of"),
        ({"filter": {"condition": "AND", "is_support_filter": True, "rule": ["code > 1"]}},
         "must read '<field> = <value>'"),
        ({"filter": {"condition": "NOT", "is_support_filter": True, "rule": ["code = 1"]}},
         "filter.condition"),
        ({"notification_name": "x" * 65}, "notification_name"),
        ({"notification_name": "bad-name"}, "notification_name"),
        ({"operation_type": "typical"}, "operation_type"),
        ({"agency_name": "admin"}, "agency_name"),
        ({"status": "paused"}, "status"),
        ({"notify_users": []}, "notify_users: is not a field of this request"),
        ({"operations": [{"service_type": "IAM", "resource_type": "user", "trace_names": ["bad name"]}]},
         "operations.0.trace_names.0"),
    ],
)  # fmt: skip
async def test_every_limit_is_a_clear_400(api: Api, extra: dict[str, Any], message: str) -> None:
    urn = await topic(api)
    assert_error(await create(api, {**body("limits", urn), **extra}), 400, "CTS.0001", message)
    assert await listed(api) == []


async def test_malformed_bodies(api: Api) -> None:
    for content, code in ((b"", "CTS.0002"), (b"{", "CTS.0002"), (b"[]", "CTS.0002"), (b"{}", "CTS.0001")):
        resp = await api.client.post(url(api), content=content, headers={"Content-Type": "application/json"})
        assert_error(resp, 400, code)
    resp = await api.client.put(url(api), json={"notification_name": "x", "operation_type": "complete"})
    assert_error(resp, 400, "CTS.0001", "notification_id: is required")


async def test_update_rules(api: Api) -> None:
    urn = await topic(api)
    made = (await create(api, body("n", urn))).json()
    base = {**body("n", urn), "notification_id": made["notification_id"]}
    no_topic = {k: v for k, v in base.items() if k != "topic_id"}
    assert_error(await api.client.put(url(api), json={**no_topic, "status": "enabled"}), 400, "CTS.0001",
                 "topic_id is required when status is enabled")  # fmt: skip
    unknown = {**base, "status": "enabled", "notification_id": "nope"}
    assert_error(
        await api.client.put(url(api), json=unknown), 404, "CTS.0404", "notification nope does not exist"
    )
    gone = f"urn:smn:local-1:{api.project}:gone"
    assert_error(await api.client.put(url(api), json={**base, "status": "enabled", "topic_id": gone}), 400,
                 "CTS.0001", "there is no SMN topic")  # fmt: skip
    other = await topic(api, "other")
    resp = await api.client.put(url(api), json={**base, "status": "enabled", "topic_id": other})
    assert resp.status_code == 200 and resp.json()["topic_id"] == other
    func = f"urn:fss:local-1:{api.project}:function:default:f"
    resp = await api.client.put(url(api), json={**base, "status": "enabled", "topic_id": func})
    assert resp.json()["notification_type"] == "fun"
    assert await listed(api, "smn") == [] and len(await listed(api, "fun")) == 1


async def test_delete_takes_comma_separated_ids_all_or_nothing(api: Api) -> None:
    urn = await topic(api)
    ids = [(await create(api, body(f"n{i}", urn))).json()["notification_id"] for i in range(4)]
    resp = await api.client.delete(url(api), params={"notification_id": f"{ids[0]},nope,{ids[1]},gone"})
    assert_error(resp, 404, "CTS.0404", "notification(s) nope, gone do not exist")
    assert len(await listed(api)) == 4, "nothing was deleted"
    resp = await api.client.delete(url(api), params={"notification_id": f"{ids[0]}, {ids[1]},,{ids[0]}"})
    assert resp.status_code == 200, resp.text
    assert sorted(n["notification_id"] for n in await listed(api)) == sorted(ids[2:])
    # exactly as the SDK sends it: %2C in the query string
    resp = await api.client.delete(f"{url(api)}?notification_id={ids[2]}%2C{ids[3]}")
    assert resp.status_code == 200 and await listed(api) == []
    assert_error(await api.client.delete(url(api)), 400, "CTS.0001", "notification_id is required")
    assert_error(await api.client.delete(url(api), params={"notification_id": " , "}), 400, "CTS.0001")
    assert_error(await api.client.delete(url(api), params={"notification_id": ",".join(["x"] * 101)}), 404,
                 "CTS.0404")  # fmt: skip
    distinct = ",".join(f"x{i}" for i in range(101))
    assert_error(await api.client.delete(url(api), params={"notification_id": distinct}), 400, "CTS.0001",
                 "at most 100")  # fmt: skip


async def test_list_by_type(api: Api) -> None:
    assert_error(await api.client.get(url(api, f"{PATH}/sms")), 400, "CTS.0001", "smn or fun")
    urn = await topic(api)
    for i in range(3):
        await create(api, body(f"s{i}", urn))
    await create(api, body("f0", f"urn:fss:local-1:{api.project}:function:default:f"))
    assert [n["notification_name"] for n in await listed(api, "smn")] == ["s0", "s1", "s2"]
    assert [n["notification_name"] for n in await listed(api, "fun")] == ["f0"]


async def test_changes_reach_the_matcher_at_once(api: Api) -> None:
    cache = services(api).matchers
    db = services(api).db
    assert (await cache.get(db, api.project)).empty
    urn = await topic(api)
    made = (await create(api, body("n", urn))).json()
    assert not (await cache.get(db, api.project)).empty, "created: invalidated, not left to the TTL"
    await api.client.put(url(api), json={**body("n", urn), "notification_id": made["notification_id"],
                                         "status": "disabled"})  # fmt: skip
    assert (await cache.get(db, api.project)).empty


async def test_routes_are_cts_operations_audited_and_permissioned(api: Api) -> None:
    names = {getattr(r, "name", None) for r in routes.router.routes}
    assert names == {"createNotification", "updateNotification", "deleteNotification", "listNotifications"}
    urn = await topic(api)
    made = (await create(api, body("audited", urn))).json()
    [trace] = (await api.list(trace_name="createNotification")).json()["traces"]
    assert trace["service_type"] == "CTS" and trace["code"] == "201" and trace["resource_name"] == "audited"

    domain = api.creds.domain_id

    box = services(api).box
    reader = services(api).db.write_sync(
        lambda conn: create_member(conn, box, domain, "viewer", "CTS ReadOnlyAccess")
    )
    creds = dataclasses.replace(api.creds, access_key=reader.access_key, secret_key=reader.secret_key)
    async with signed_client(api.app, creds, "http://127.0.0.1:8080") as client:
        assert (await client.get(url(api, f"{PATH}/smn"))).status_code == 200
        assert_error(await client.post(url(api), json=body("x", urn)), 403, "CTS.0403")
        assert_error(await client.put(url(api), json={**body("x", urn), "notification_id": "a",
                                                      "status": "enabled"}), 403, "CTS.0403")  # fmt: skip
        resp = await client.delete(url(api), params={"notification_id": made["notification_id"]})
        assert_error(resp, 403, "CTS.0403")
    bare = httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://127.0.0.1:8080")
    async with bare:
        assert_error(await bare.get(url(api, f"{PATH}/smn")), 401, "CTS.0401")


async def test_list_quotas_counts_notifications(api: Api) -> None:
    urn = await topic(api)
    assert (await create(api, body("quota_one", urn))).status_code == 201
    quotas = (await api.client.get(url(api, "quotas"))).json()["resources"]
    assert {"type": "smn_notification", "used": 1, "quota": 100} in quotas
