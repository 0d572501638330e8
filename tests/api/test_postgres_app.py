"""The whole service on PostgreSQL: migrations, bootstrap, ingest, ListTraces, login, odd bytes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from cts_helpers import TraceFactory, in_process_api
from opencts.config import Settings

pytestmark = pytest.mark.postgres
NUL_NAME = "ad\x00min"


async def test_the_service_runs_on_postgresql(
    postgres_url: str, tmp_path: Path, make_trace: TraceFactory
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_url)
    async with in_process_api(settings) as api:
        app, creds, client = api.app, api.creds, api.client
        traces = [make_trace() for _ in range(25)]
        first = await client.post(f"/v3/{creds.project_id}/traces", json={"traces": traces})
        again = await client.post(f"/v3/{creds.project_id}/traces", json={"traces": traces})
        assert (first.json()["accepted"], again.json()["duplicates"]) == (25, 25)
        page = (await client.get(f"/v3/{creds.project_id}/traces", params={"limit": 10})).json()
        assert page["meta_data"]["count"] == 10 and page["meta_data"]["marker"]
        nul_path = await client.get("/v3/%00/traces")
        assert nul_path.status_code == 403
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as bare:
            body = {
                "auth": {
                    "identity": {
                        "methods": ["password"],
                        "password": {
                            "user": {"name": "ad\x00min", "password": "x", "domain": {"name": "opencts"}}
                        },
                    }
                }
            }
            resp = await bare.post("/v3/auth/tokens", json=body)
            assert resp.status_code in (400, 401)
            assert resp.json()["error_code"] in ("CTS.0001", "CTS.0401")


async def test_a_nul_trace_does_not_fail_its_neighbours_on_postgresql(
    postgres_url: str, tmp_path: Path, make_trace: TraceFactory
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=postgres_url)
    async with in_process_api(settings) as api:
        creds, client = api.creds, api.client
        url = f"/v3/{creds.project_id}/traces"
        resp = await client.post(url, json={"traces": [make_trace(user={"name": "a\x00b"}), make_trace()]})
        assert resp.status_code == 200
        assert [r["status"] for r in resp.json()["results"]] == ["rejected", "accepted"]
