"""OpenCTS's own calls land in its own trail: logins, logouts, writes and denials, with secrets redacted."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from cts_helpers import Api
from opencts.traces.self_audit import NUL_SHOWN


def login_body(api: Api, password: str) -> dict[str, Any]:
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": api.creds.user_name,
                        "password": password,
                        "domain": {"name": api.creds.domain_name},
                    }
                },
            },
            "scope": {"project": {"id": api.project}},
        }
    }


async def trail(api: Api, **filters: str) -> list[dict[str, Any]]:
    resp = await api.list(limit=200, **filters)
    assert resp.status_code == 200, resp.text
    traces: list[dict[str, Any]] = resp.json()["traces"]
    return traces


async def test_login_and_logout_are_traced_without_the_password(api: Api) -> None:
    bare = httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://127.0.0.1:8080")
    async with bare:
        ok = await bare.post("/v3/auth/tokens", json=login_body(api, api.creds.password))
        assert ok.status_code == 201
        token = ok.headers["x-subject-token"]
        bad = await bare.post("/v3/auth/tokens", json=login_body(api, "wrong-password"))
        assert bad.status_code == 401
        out = await bare.delete("/v3/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token})
        assert out.status_code == 204
    logins = await trail(api, trace_name="login")
    assert [t["code"] for t in logins] == ["401", "201"]
    failed, succeeded = logins
    assert failed["trace_rating"] == "warning" and failed["user"]["name"] == "admin"
    assert succeeded["trace_rating"] == "normal" and succeeded["service_type"] == "IAM"
    assert succeeded["user"]["id"] and succeeded["source_ip"]
    assert api.creds.password not in str(logins)
    assert '"password":"***"' in succeeded["request"]
    assert token not in str(logins)
    logout = await trail(api, trace_name="logout")
    assert len(logout) == 1 and logout[0]["code"] == "204" and logout[0]["user"]["name"] == "admin"


async def test_denials_are_traced_under_the_project_they_targeted(api: Api) -> None:
    unsigned = httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://127.0.0.1:8080")
    async with unsigned:
        resp = await unsigned.get(f"/v3/{api.project}/traces")
        assert resp.status_code == 401
    denied = await trail(api, trace_name="listTraces")
    assert len(denied) == 1
    assert denied[0]["code"] == "401" and denied[0]["trace_rating"] == "warning"
    assert denied[0]["request_id"] == resp.headers["x-request-id"]


async def test_reads_and_ingest_are_not_audited(api: Api, make_trace: Any) -> None:
    await api.put([make_trace()])
    await api.list()
    names = {t["trace_name"] for t in await trail(api)}
    assert names == {"createServer"}


async def test_a_disabled_management_tracker_records_no_audit_trace_and_warns_of_nothing(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    def tracker(status: str) -> dict[str, Any]:
        return {"tracker_type": "system", "tracker_name": "system", "status": status}

    assert (await api.client.put(f"/v3/{api.project}/tracker", json=tracker("disabled"))).status_code == 200
    with caplog.at_level(logging.WARNING, logger="opencts.audit"):
        made = await api.client.post("/v3/groups", json={"group": {"name": "unrecorded"}})
    assert made.status_code == 201
    assert not caplog.records  # the tracker's decision, not a failure of the audit trail
    assert (await api.client.put(f"/v3/{api.project}/tracker", json=tracker("enabled"))).status_code == 200
    recorded = {t["trace_name"] for t in await trail(api)}
    assert "createGroup" not in recorded and "updateTracker" in recorded


async def test_a_nul_or_an_overlong_name_does_not_keep_an_attempt_out_of_the_trail(api: Api) -> None:
    # ingest refuses NUL and over-long fields; the audit of such a call is fitted instead of lost
    bare = httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://127.0.0.1:8080")
    body = login_body(api, "wrong-password")
    body["auth"]["identity"]["password"]["user"]["name"] = "adm\x00in"
    async with bare:
        bad = await bare.post("/v3/auth/tokens", json=body)
    assert bad.status_code == 401
    gone = await api.client.delete(f"/v2/{api.project}/notifications/topics/urn%00smn")
    assert gone.status_code == 404, gone.text
    long_id = "t" * 3000
    missing = await api.client.delete(f"/v2/{api.project}/notifications/topics/{long_id}")
    assert missing.status_code in (400, 404), missing.text

    (login,) = await trail(api, trace_name="login")
    assert login["code"] == "401" and login["user"]["name"] == f"adm{NUL_SHOWN}in"
    deletes = await trail(api, trace_name="deleteTopic")
    assert [t["message"] for t in deletes] == [
        f"DELETE /v2/{api.project}/notifications/topics/{long_id}",
        f"DELETE /v2/{api.project}/notifications/topics/urn{NUL_SHOWN}smn",
    ]
    assert deletes[0]["resource_id"] == "t" * 349 + "…"
