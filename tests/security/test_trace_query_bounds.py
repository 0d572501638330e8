"""ListTraces and export refuse out-of-range and unstorable parameters with a 400 before any query runs.

Numbers beyond a 64-bit column answered 500 on SQLite, and an export only met the database's refusal
(a NUL byte on PostgreSQL) after its 200 and headers were sent: a cut stream instead of an error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from cts_helpers import in_process_api
from opencts.config import Settings
from opencts.traces.query import FILTER_PARAMS


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    url = None if request.param == "sqlite" else str(request.getfixturevalue("postgres_url"))
    settings = Settings(data_dir=tmp_path / "data", database_url=url, ingest_workers=0)
    async with in_process_api(settings) as api:
        creds, signed = api.creds, api.client
        signed.base_url = httpx.URL(f"http://127.0.0.1:8080/v3/{creds.project_id}/")
        yield signed


BEYOND = [
    {"from": str(2**63)},
    {"to": str(2**63)},
    {"from": str(2**64), "to": str(2**64 + 1)},
    {"from": "1", "to": str(2**63 - 1)},  # int64 itself is no date a trace can have
    {"from": "-1"},
    {"from": "9" * 5000},
    {"limit": str(2**63)},
    {"limit": "-1"},
    {"limit": "1e3"},
    {"trace_type": "system\x00"},
    {"trace_id": "a\x00b"},
    {"next": "a\x00b"},
    {"trace_id": "x" * 351},
    *({param: "al\x00ice"} for param in FILTER_PARAMS),
]


def refusals(resp: httpx.Response) -> list[str]:
    """What is wrong with an answer that should be a CTS-format 400; empty when it is one."""
    wrong = []
    if resp.status_code != 400:
        wrong.append(f"status {resp.status_code}: {resp.text[:200]}")
    elif not resp.headers["content-type"].startswith("application/json"):
        wrong.append(f"content-type {resp.headers['content-type']}")
    elif resp.json().get("error_code") != "CTS.0001" or not resp.json().get("error_msg"):
        wrong.append(f"body {resp.text[:200]}")
    if not resp.headers.get("x-request-id"):
        wrong.append("no X-Request-Id")
    return wrong


# One app per backend for every case: building one (migrations, first admin) is the slow part.
async def test_list_traces_refuses_every_bad_parameter(client: httpx.AsyncClient) -> None:
    failures = {}
    for params in BEYOND:
        if wrong := refusals(await client.get("traces", params=params)):
            failures[repr(params)[:80]] = wrong
    assert failures == {}


async def test_export_refuses_every_bad_parameter_before_streaming(client: httpx.AsyncClient) -> None:
    failures = {}
    for fmt in ("csv", "ndjson", "csv\x00"):
        for params in [p for p in BEYOND if "limit" not in p]:  # export takes no limit
            resp = await client.get("traces/export", params={**params, "format": fmt})
            if wrong := refusals(resp):
                failures[f"{fmt!r} {params!r}"[:80]] = wrong
    assert failures == {}


async def test_the_largest_accepted_bounds_still_answer(client: httpx.AsyncClient) -> None:
    """Year 9999 is the end of time here: a far 'to' is clamped to it, not refused or overflowed."""
    far = {"from": "0", "to": "253402300799999"}
    assert (await client.get("traces", params={**far, "limit": "200"})).status_code == 200
    resp = await client.get("traces/export", params={**far, "format": "ndjson"})
    assert resp.status_code == 200 and resp.text == ""
