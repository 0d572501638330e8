"""The ``submitter`` field ListTraces adds to each trace is one the official SDK does not know: it must
parse the answer as before and simply not see the field."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from huaweicloudsdkcts.v3 import CtsClient, ListTracesRequest

from cts_helpers import TraceFactory, admin_sdk_client
from opencts.client.signing import HmacAuth
from opencts.testing.server import ServerProcess

pytestmark = [pytest.mark.sdk, pytest.mark.slow]


def test_the_sdk_lists_traces_that_carry_a_submitter(
    live_server: ServerProcess, make_trace: TraceFactory
) -> None:
    creds = live_server.creds
    auth = HmacAuth(creds.access_key, creds.secret_key, project_id=creds.project_id)
    trace = make_trace()
    path = f"{live_server.url}/v3/{creds.project_id}/traces"
    assert httpx.post(path, json={"traces": [trace]}, auth=auth).json()["accepted"] == 1
    raw = httpx.get(path, params={"trace_id": trace["trace_id"]}, auth=auth).json()["traces"]
    assert raw[0]["submitter"]["access_key_id"] == creds.access_key

    client: Any = admin_sdk_client(CtsClient, live_server)
    resp = client.list_traces(ListTracesRequest(trace_type="system", trace_id=trace["trace_id"]))
    [got] = resp.traces
    assert got.trace_id == trace["trace_id"] and got.user.name == "alice" and got.code == "200"
    assert "submitter" not in got.to_dict()
