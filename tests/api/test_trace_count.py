"""``GET /v3/{project_id}/traces/count``: the size of an export with the same parameters, told ahead."""

from __future__ import annotations

import httpx

from cts_helpers import Api, TraceFactory
from opencts.clock import now_ms


async def test_count_matches_the_export(api: Api, make_trace: TraceFactory) -> None:
    now = now_ms()
    traces = [make_trace(user={"name": "counted"}, time=now - 3_600_000 * h - 1000) for h in range(5)]
    traces.append(make_trace(user={"name": "other"}))
    assert (await api.put(traces)).status_code == 200
    base = f"/v3/{api.project}/traces"
    params: dict[str, str | int] = {"from": 0, "user": "counted"}
    count = await api.client.get(f"{base}/count", params=params)
    assert count.status_code == 200
    assert count.json() == {"count": 5}
    export = await api.client.get(f"{base}/export", params={**params, "format": "ndjson"})
    assert len(export.text.splitlines()) == 5
    # the export's own defaults: the last hour
    assert (await api.client.get(f"{base}/count", params={"user": "counted"})).json() == {"count": 1}


async def test_count_refuses_what_the_export_refuses(api: Api) -> None:
    resp = await api.client.get(f"/v3/{api.project}/traces/count", params={"trace_rating": "bogus"})
    assert resp.status_code == 400
    assert resp.json()["error_code"] == "CTS.0001"
    assert "x-request-id" in resp.headers


async def test_count_needs_a_signed_reader(api: Api) -> None:
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as anonymous:
        resp = await anonymous.get(f"/v3/{api.project}/traces/count")
    assert resp.status_code == 401
    assert resp.json()["error_code"] == "CTS.0401"
