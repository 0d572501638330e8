"""A producer key that posts a copy of OpenCTS's own audit record of an admin's action is always told
apart from the genuine record: every trace carries the submitter the server saw, in ListTraces and in both
export formats, and nothing a producer writes in a trace can set it."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import httpx
import orjson

from cts_helpers import Api, Member, create_member
from opencts.client.signing import HmacAuth
from opencts.iam.permissions import CTS_TRACE_PRODUCER
from opencts.traces.submitter import SELF

OPENCTS = {"type": "service", "name": "OpenCTS"}


async def producer_client(api: Api) -> tuple[httpx.AsyncClient, str, str]:
    """A client signed with a fresh user's access key that may only post traces; with its user id and AK."""

    box, domain_id = api.app.state.services.box, api.creds.domain_id
    producer: Member = await api.app.state.services.db.write(
        lambda conn: create_member(conn, box, domain_id, "producer", CTS_TRACE_PRODUCER)
    )
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api.app),
        base_url="http://127.0.0.1:8080",
        auth=HmacAuth(producer.access_key, producer.secret_key, project_id=api.project),
    )
    return client, producer.user_id, producer.access_key


async def test_a_producer_cannot_pass_a_trace_off_as_opencts_own_record(api: Api) -> None:
    made = await api.client.post("/v3/groups", json={"group": {"name": "auditors"}})
    assert made.status_code == 201, made.text
    [genuine] = (await api.list(trace_name="createGroup")).json()["traces"]
    assert genuine["submitter"] == OPENCTS

    # the forgery: the genuine record field for field, claiming OpenCTS as its submitter, under a new id
    forged = {k: v for k, v in genuine.items() if k != "record_time"}
    forged["trace_id"] = str(uuid.uuid4())
    producer, user_id, access_key = await producer_client(api)
    async with producer:
        posted = await producer.post(f"/v3/{api.project}/traces", json={"traces": [forged]})
    assert posted.status_code == 200, posted.text
    assert posted.json()["accepted"] == 1

    listed = (await api.list(trace_name="createGroup")).json()["traces"]
    by_id = {t["trace_id"]: t for t in listed}
    assert set(by_id) == {genuine["trace_id"], forged["trace_id"]}
    assert by_id[genuine["trace_id"]]["submitter"] == OPENCTS
    assert by_id[forged["trace_id"]]["submitter"] == {
        "type": "user",
        "user_id": user_id,
        "user_name": "producer",
        "auth": "aksk",
        "access_key_id": access_key,
    }
    # everything else is the producer's to write, and reads the same
    same = {
        k: v
        for k, v in by_id[forged["trace_id"]].items()
        if k not in ("trace_id", "record_time", "submitter")
    }
    assert same == {k: v for k, v in genuine.items() if k not in ("trace_id", "record_time", "submitter")}

    export = f"/v3/{api.project}/traces/export"
    text = (await api.client.get(export, params={"format": "csv", "trace_name": "createGroup"})).text
    rows = {r["Trace ID"]: r for r in csv.DictReader(io.StringIO(text.lstrip("\ufeff")))}
    assert rows[genuine["trace_id"]]["Submitter"] == SELF.label == "OpenCTS"
    assert rows[forged["trace_id"]]["Submitter"] == f"producer ({access_key})"

    nd = (await api.client.get(export, params={"format": "ndjson", "trace_name": "createGroup"})).content
    exported = {t["trace_id"]: t["submitter"] for t in map(orjson.loads, nd.splitlines())}
    assert exported == {
        genuine["trace_id"]: OPENCTS,
        forged["trace_id"]: by_id[forged["trace_id"]]["submitter"],
    }


async def test_a_submitter_in_the_body_never_reaches_the_log(api: Api, make_trace: Any) -> None:
    """Whatever form the claim takes (a service, a user, a bare string, null), the server's value wins."""
    claims = [OPENCTS, {"type": "user", "user_id": "someone-else"}, "OpenCTS", None]
    traces = [make_trace(submitter=claim) for claim in claims[:3]] + [{**make_trace(), "submitter": None}]
    resp = await api.put(traces)
    assert resp.status_code == 200 and resp.json()["accepted"] == len(traces), resp.text
    for trace in traces:
        [stored] = (await api.list(trace_id=trace["trace_id"])).json()["traces"]
        submitter = stored["submitter"]
        assert submitter.pop("user_id")  # the bootstrap admin's id, which its credentials file does not hold
        assert submitter == {
            "type": "user",
            "user_name": api.creds.user_name,
            "auth": "aksk",
            "access_key_id": api.creds.access_key,
        }
