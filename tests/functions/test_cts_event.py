"""The CTS event a trigger hands to a function, built from traces as the server really stores them.

Each trace goes in through the ingest API (or is the server's own audit of a login) and is read back from
the ``traces`` table, so the table below covers what ingest normalises (``code`` to text, bodies to JSON
text) and :func:`cts_event` undoes for FunctionGraph.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from cts_helpers import in_process_api
from opencts.clock import now_ms
from opencts.config import Settings
from opencts.functions.event import cts_event, cts_event_json
from opencts.store.tables import traces

#: a minute ago, inside the retention window
TIME = now_ms() - 60_000


def _trace(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "trace_id": str(uuid.uuid4()),
        "trace_name": "createServer",
        "trace_type": "ApiCall",
        "service_type": "ECS",
        "resource_type": "ecs",
        "time": TIME,
        "user": {"id": "u1", "name": "alice", "domain": {"id": "d1", "name": "acme"}},
        "source_ip": "192.0.2.7",
    }
    base.update(fields)
    return base


# (posted trace, expected fields of the event's "cts" object)
CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "int code, object bodies",
        _trace(code=200, request={"server": {"name": "web"}}, response={"id": "srv-1"}),
        {"code": 200, "request": {"server": {"name": "web"}}, "response": {"id": "srv-1"}},
    ),
    (
        "code sent as text",
        _trace(code="404", trace_rating="warning"),
        {"code": 404, "trace_status": "warning"},
    ),
    (
        "a code that is not a number stays text",
        _trace(code="Forbidden"),
        {"code": "Forbidden"},
    ),
    (
        "a body that is not JSON stays text",
        _trace(request="name=web&size=2", response="[1, 2]"),
        {"request": "name=web&size=2", "response": [1, 2]},
    ),
    (
        "the fields the login whitelist reads",
        _trace(
            service_type="IAM",
            resource_type="user",
            trace_name="logout",
            trace_type="ConsoleAction",
            source_ip="2001:db8::5",
            resource_name="alice",
            resource_id="u1",
            trace_rating="incident",
        ),
        {
            "source_ip": "2001:db8::5",
            "trace_name": "logout",
            "service_type": "IAM",
            "resource_type": "user",
            "resource_name": "alice",
            "resource_id": "u1",
            "trace_type": "ConsoleAction",
            "trace_status": "incident",
            "time": TIME,
            "user": {"id": "u1", "name": "alice", "domain": {"id": "d1", "name": "acme"}},
        },
    ),
    (
        "no rating means normal",
        _trace(),
        {"trace_status": "normal"},
    ),
]


@pytest.fixture
async def stored(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Every case's trace, and a real audited login, as stored bodies keyed by trace id ("login")."""
    settings = Settings(data_dir=tmp_path / "data", bind="127.0.0.1:8080", ingest_workers=0)
    async with in_process_api(settings) as api:
        creds = api.creds
        resp = await api.put([t for _, t, _ in CASES])
        assert resp.status_code == 200, resp.text
        login = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": creds.user_name,
                            "password": creds.password,
                            "domain": {"name": creds.domain_name},
                        }
                    },
                },
                "scope": {"project": {"id": creds.project_id}},
            }
        }
        transport = httpx.ASGITransport(app=api.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as bare:
            assert (await bare.post("/v3/auth/tokens", json=login)).status_code == 201
        db = api.app.state.services.db
        rows = await db.read(lambda conn: list(conn.execute(select(traces.c.trace_name, traces.c.body))))
    found: dict[str, dict[str, Any]] = {}
    for name, body in rows:
        trace = orjson.loads(body)
        found["login" if name == "login" else trace["trace_id"]] = trace
    return found


@pytest.mark.parametrize(("case", "posted", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_event_from_a_stored_trace(
    stored: dict[str, dict[str, Any]], case: str, posted: dict[str, Any], expected: dict[str, Any]
) -> None:
    trace = stored[posted["trace_id"]]
    event = cts_event(trace)
    assert list(event) == ["cts"]
    inner = event["cts"]
    for key, value in expected.items():
        assert inner[key] == value, key
    assert inner["trace_id"] == posted["trace_id"]
    assert isinstance(inner["record_time"], int) and inner["record_time"] >= TIME
    assert "trace_rating" not in inner and "submitter" not in inner
    assert orjson.loads(cts_event_json(trace)) == event


async def test_event_of_an_audited_login_carries_what_the_sample_reads(
    stored: dict[str, dict[str, Any]],
) -> None:
    inner = cts_event(stored["login"])["cts"]
    assert inner["trace_name"] == "login" and inner["service_type"] == "IAM"
    assert inner["resource_type"] == "user"
    assert inner["source_ip"]
    assert inner["code"] == 201
    assert isinstance(inner["request"], dict) and inner["request"]["auth"]["identity"]["methods"] == [
        "password"
    ]
    assert inner["trace_status"] == "normal"
    assert isinstance(inner["time"], int) and isinstance(inner["record_time"], int)
