"""CTS triggers through the FunctionGraph v2 trigger API: each one is a ``fun`` key event notification."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Connection, insert, select

from cts_helpers import in_process_api
from opencts.clock import now_ms
from opencts.config import Settings
from opencts.functions import repository, triggers
from opencts.iam.bootstrap import BootstrapCredentials
from opencts.store import Database
from opencts.store.tables import function_triggers, functions, notifications

LOGIN_OPS = ["IAM:user:login", "IAM:user:logout"]


def insert_function(db: Database, project_id: str, name: str, region: str = "local-1") -> str:
    """A function row as the function API stores it; its URN (without a version)."""
    urn = f"urn:fss:{region}:{project_id}:function:default:{name}"
    now = now_ms()
    code = b"PK\x05\x06" + bytes(18)  # an empty zip archive
    db.write_sync(
        lambda conn: conn.execute(
            insert(functions).values(
                func_id=str(uuid.uuid4()),
                project_id=project_id,
                package="default",
                name=name,
                func_urn=urn,
                runtime="Python3.10",
                handler="index.handler",
                timeout=30,
                memory_size=128,
                code_type="zip",
                code=code,
                code_digest=hashlib.sha512(code).hexdigest(),
                code_size=len(code),
                user_data="{}",
                description="",
                config="{}",
                created_at=now,
                last_modified=now,
            )
        )
    )
    return urn


@dataclass
class World:
    app: FastAPI
    client: httpx.AsyncClient
    creds: BootstrapCredentials
    urn: str

    @property
    def project(self) -> str:
        return self.creds.project_id

    @property
    def db(self) -> Database:
        db: Database = self.app.state.services.db
        return db

    def path(self, urn: str | None = None) -> str:
        return f"/v2/{self.project}/fgs/triggers/{quote(urn or self.urn, safe='')}"

    async def create(self, name: str, operations: list[str] | None = None, **body: Any) -> httpx.Response:
        doc = {
            "trigger_type_code": "CTS",
            "trigger_status": "ACTIVE",
            "event_data": {"name": name, "operations": operations or LOGIN_OPS},
            **body,
        }
        return await self.client.post(self.path(), json=doc)

    async def fun_notifications(self) -> list[dict[str, Any]]:
        resp = await self.client.get(f"/v3/{self.project}/notifications/fun")
        assert resp.status_code == 200, resp.text
        found: list[dict[str, Any]] = resp.json()["notifications"]
        return found


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    settings = Settings(data_dir=tmp_path / "data", bind="127.0.0.1:8080", ingest_workers=0)
    async with in_process_api(settings) as api:
        urn = insert_function(api.app.state.services.db, api.project, "audit")
        yield World(api.app, api.client, api.creds, urn)


async def test_a_cts_trigger_is_a_fun_notification_of_the_function(world: World) -> None:
    made = await world.create("logins")
    assert made.status_code == 201, made.text
    trigger = made.json()
    assert trigger["trigger_type_code"] == "CTS" and trigger["trigger_status"] == "ACTIVE"
    assert trigger["event_data"] == {"name": "logins", "operations": LOGIN_OPS}
    assert trigger["created_time"].endswith("Z") and trigger["last_updated_time"]

    (notification,) = await world.fun_notifications()
    assert notification["notification_id"] == trigger["trigger_id"]
    assert notification["topic_id"] == world.urn and notification["status"] == "enabled"
    assert notification["operations"] == [
        {"service_type": "IAM", "resource_type": "user", "trace_names": ["login", "logout"]}
    ]
    link = world.db.read_sync(lambda conn: conn.execute(select(function_triggers)).one())
    assert link.notification_id == trigger["trigger_id"] and link.status == "ACTIVE"

    listed = await world.client.get(world.path())
    assert listed.status_code == 200 and listed.json() == [trigger]  # a bare array
    one = f"{world.path()}/CTS/{trigger['trigger_id']}"
    assert (await world.client.get(one)).json() == trigger
    # the URN with a version names the same function
    assert (await world.client.get(world.path(world.urn + ":latest"))).json() == [trigger]


async def test_status_and_operations_change_through_the_trigger(world: World) -> None:
    trigger_id = (await world.create("logins")).json()["trigger_id"]
    one = f"{world.path()}/CTS/{trigger_id}"
    off = await world.client.put(one, json={"trigger_status": "DISABLED"})
    assert off.status_code == 200, off.text
    assert off.json()["trigger_status"] == "DISABLED"
    assert (await world.fun_notifications())[0]["status"] == "disabled"

    changed = await world.client.put(
        one, json={"trigger_status": "ACTIVE", "event_data": {"operations": ["CTS:tracker:createTracker"]}}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["event_data"] == {"name": "logins", "operations": ["CTS:tracker:createTracker"]}
    (notification,) = await world.fun_notifications()
    assert notification["status"] == "enabled" and notification["operations"][0]["service_type"] == "CTS"


async def test_delete_one_and_all_take_the_notifications_along(world: World) -> None:
    first = (await world.create("logins")).json()["trigger_id"]
    await world.create("logouts", ["IAM:user:logout"])
    assert (await world.client.delete(f"{world.path()}/CTS/{first}")).status_code == 204
    assert [n["notification_name"] for n in await world.fun_notifications()] == ["logouts"]
    assert (await world.client.delete(f"{world.path()}/CTS/{first}")).status_code == 404
    assert (await world.client.delete(world.path())).status_code == 204
    assert await world.fun_notifications() == []
    assert (await world.client.get(world.path())).json() == []
    assert world.db.read_sync(lambda conn: conn.execute(select(function_triggers)).all()) == []


async def test_a_fun_notification_made_through_cts_is_a_trigger_too(world: World) -> None:
    body = {
        "notification_name": "from_cts",
        "operation_type": "customized",
        "operations": [{"service_type": "IAM", "resource_type": "user", "trace_names": ["login"]}],
        "topic_id": world.urn + ":latest",
    }
    made = await world.client.post(f"/v3/{world.project}/notifications", json=body)
    assert made.status_code == 201, made.text
    (trigger,) = (await world.client.get(world.path())).json()
    assert trigger["trigger_id"] == made.json()["notification_id"]
    assert trigger["event_data"] == {"name": "from_cts", "operations": ["IAM:user:login"]}
    # and deleting it through CTS leaves no trigger behind
    gone = await world.client.delete(
        f"/v3/{world.project}/notifications", params={"notification_id": trigger["trigger_id"]}
    )
    assert gone.status_code == 200, gone.text
    assert (await world.client.get(world.path())).json() == []


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"trigger_type_code": "TIMER"}, 400, "OpenCTS implements CTS triggers"),
        (
            {"event_data": {"name": "x", "operations": ["IAM-user-login"]}},
            400,
            "ServiceType:ResourceType:TraceName",
        ),
        ({"event_data": {"name": "x", "operations": []}}, 400, "event_data.operations"),
        ({"event_data": {"name": "bad name", "operations": LOGIN_OPS}}, 400, "event_data.name"),
        ({"event_data": {"name": "x", "operations": LOGIN_OPS, "is_serial": True}}, 400, "is_serial"),
        (
            {"event_data": {"name": "x", "operations": [f"S{i}:r:op" for i in range(11)]}},
            400,
            "at most 10 services",
        ),
        (
            {"event_data": {"name": "x", "operations": [f"IAM:user:op{i}" for i in range(101)]}},
            400,
            "at most 100 operations",
        ),
        ({"trigger_status": "PAUSED"}, 400, "trigger_status"),
    ],
)
async def test_bad_bodies_are_refused_by_name(
    world: World, body: dict[str, Any], status: int, words: str
) -> None:
    doc: dict[str, Any] = {
        "trigger_type_code": "CTS",
        "event_data": {"name": "logins", "operations": LOGIN_OPS},
        **body,
    }
    resp = await world.client.post(world.path(), json=doc)
    assert resp.status_code == status, resp.text
    assert words in resp.json()["error_msg"]
    assert await world.fun_notifications() == []


async def test_ten_cts_triggers_per_project(world: World) -> None:
    other = insert_function(world.db, world.project, "other")
    for i in range(10):
        urn = world.urn if i % 2 else other
        doc = {"trigger_type_code": "CTS", "event_data": {"name": f"t{i}", "operations": LOGIN_OPS}}
        assert (await world.client.post(world.path(urn), json=doc)).status_code == 201
    eleventh = await world.create("t10")
    assert eleventh.status_code == 400 and "at most 10 CTS triggers" in eleventh.json()["error_msg"]
    assert len(await world.fun_notifications()) == 10
    assert len((await world.client.get(world.path())).json()) == 5
    # the CTS API counts the same triggers: an eleventh fun notification is refused there too
    body = {
        "notification_name": "via_cts",
        "operation_type": "customized",
        "operations": [{"service_type": "IAM", "resource_type": "user", "trace_names": ["login"]}],
        "topic_id": world.urn,
    }
    refused = await world.client.post(f"/v3/{world.project}/notifications", json=body)
    assert (
        refused.status_code == 400 and "at most 10 notifications of type fun" in refused.json()["error_msg"]
    )


async def test_names_are_unique_and_functions_must_exist(world: World) -> None:
    assert (await world.create("logins")).status_code == 201
    assert (await world.create("logins")).status_code == 409
    missing = world.urn.replace(":audit", ":nope")
    assert (await world.client.get(world.path(missing))).status_code == 404
    foreign = world.urn.replace(world.project, "0" * 32)
    assert (await world.client.get(world.path(foreign))).status_code == 404
    assert (await world.client.get(f"{world.path()}/TIMER/x")).status_code == 400
    assert (await world.client.get(f"{world.path()}/CTS/x")).status_code == 404


async def test_deleting_a_function_deletes_its_triggers_notifications(world: World) -> None:
    await world.create("logins")
    await world.create("logouts", ["IAM:user:logout"])

    def drop(conn: Connection) -> int:
        function = repository.get_by_urn(conn, world.project, world.urn)
        return triggers.delete_for_function(conn, function)

    assert world.db.write_sync(drop) == 2
    left = world.db.read_sync(lambda conn: conn.execute(select(notifications)).all())
    assert left == []


async def test_the_sdks_list_of_queue_settings_is_no_change_or_refused(world: World) -> None:
    trigger_id = (await world.create("logins")).json()["trigger_id"]
    one = f"{world.path()}/CTS/{trigger_id}"
    same = await world.client.put(one, json={"trigger_status": "ACTIVE", "event_data": [{}]})
    assert same.status_code == 200 and same.json()["event_data"]["operations"] == LOGIN_OPS
    refused = await world.client.put(one, json={"event_data": [{"is_serial": True, "polling_interval": 1}]})
    assert refused.status_code == 400
    assert "is_serial, polling_interval do not apply to CTS triggers" in refused.json()["error_msg"]
