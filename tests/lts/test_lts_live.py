"""A tracker's LTS stream on a live server: turned on with huaweicloudsdkcts, read with huaweicloudsdklts
(AK/SK signed, unchanged but for the endpoint), and with ``opencts lts ...``."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcts.v3 import (
    CtsClient,
    ListTrackersRequest,
    UpdateTrackerRequest,
    UpdateTrackerRequestBody,
)
from huaweicloudsdklts.v2 import (
    ListLogGroupsRequest,
    ListLogsRequest,
    ListLogStreamRequest,
    LtsClient,
    QueryLtsLogParams,
)
from sqlalchemy import select
from typer.testing import CliRunner

from cts_helpers import admin_sdk_client
from opencts.cli.main import app
from opencts.clock import now_ms
from opencts.store import Database
from opencts.store.tables import function_invocations
from opencts.testing.server import ServerProcess
from opencts.testing.waiting import wait_for

pytestmark = [pytest.mark.sdk, pytest.mark.slow]
runner = CliRunner()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("lts") / "data") as running:
        yield running


@pytest.fixture(scope="module")
def fed(server: ServerProcess) -> dict[str, Any]:
    """LTS turned on for the management tracker through the CTS SDK, then 12 traces ingested: every
    third one a ``deleteServer``. Returns the ids and the group and stream the tracker shows."""
    cts = admin_sdk_client(CtsClient, server)
    cts.update_tracker(
        UpdateTrackerRequest(
            body=UpdateTrackerRequestBody(tracker_type="system", tracker_name="system", is_lts_enabled=True)
        )
    )
    [tracker] = cts.list_trackers(ListTrackersRequest(tracker_name="system")).trackers
    assert tracker.lts.is_lts_enabled and tracker.lts.log_group_name == "CTS"
    assert tracker.lts.log_topic_name == "system-trace"
    start = now_ms() - 60_000
    traces = [
        {
            "trace_id": f"lts-{i:03d}",
            "trace_name": "deleteServer" if i % 3 == 0 else "createServer",
            "trace_type": "ApiCall",
            "trace_rating": "warning" if i % 3 == 0 else "normal",
            "service_type": "ECS",
            "resource_type": "ecs",
            "resource_name": f"web-{i}",
            "time": start + i * 1000,
            "user": {"id": "u" * 32, "name": "alice", "domain": {"id": "d" * 32, "name": "acme"}},
        }
        for i in range(12)
    ]
    with server.client() as client:
        resp = client.post(f"/v3/{server.creds.project_id}/traces", json={"traces": traces})
        assert resp.status_code == 200, resp.text
    return {"ids": [t["trace_id"] for t in traces], "group": tracker.group_id, "stream": tracker.stream_id}


def lts_client(server: ServerProcess) -> Any:
    return admin_sdk_client(LtsClient, server)


def query(server: ServerProcess, fed: dict[str, Any], **params: Any) -> Any:
    body = QueryLtsLogParams(start_time=str(now_ms() - 3_600_000), end_time=str(now_ms()), **params)
    request = ListLogsRequest(log_group_id=fed["group"], log_stream_id=fed["stream"], body=body)
    return lts_client(server).list_logs(request)


def trace_ids(response: Any) -> list[str]:
    return [json.loads(log.content)["trace_id"] for log in response.logs]


def test_the_sdk_lists_the_group_and_stream_and_queries_the_records(
    server: ServerProcess, fed: dict[str, Any]
) -> None:
    client = lts_client(server)
    [group] = client.list_log_groups(ListLogGroupsRequest()).log_groups
    assert (group.log_group_name, group.log_group_id, group.ttl_in_days) == ("CTS", fed["group"], 7)
    [stream] = client.list_log_stream(ListLogStreamRequest(log_group_id=group.log_group_id)).log_streams
    assert (stream.log_stream_name, stream.log_stream_id) == ("system-trace", fed["stream"])
    # the lts consumer writes them soon after ingest, each once, in the tracker's order
    everything = wait_for(
        lambda: (r := query(server, fed, limit=100)) and len(r.logs) >= 12 and r, 20, "records"
    )
    mine = [t for t in trace_ids(everything) if t.startswith("lts-")]
    assert mine == fed["ids"]  # the SDK's own calls (self-audit) are records too; ours, in order
    deletes = query(server, fed, keywords="deleteServer", is_count=True, limit=2)
    assert (trace_ids(deletes), deletes.count) == (["lts-000", "lts-003"], 4)
    assert deletes.logs[0].labels["trace_name"] == "deleteServer"
    after = query(
        server,
        fed,
        keywords="deleteServer",
        limit=10,
        search_type="forwards",
        line_num=deletes.logs[-1].line_num,
    )
    assert trace_ids(after) == ["lts-006", "lts-009"]
    assert trace_ids(query(server, fed, keywords="deleteserver AND web-4*")) == []  # any case; a prefix
    assert trace_ids(query(server, fed, keywords="web-3")) == ["lts-003"]


def test_a_missing_stream_or_bad_query_is_a_cts_error_the_sdk_raises(
    server: ServerProcess, fed: dict[str, Any]
) -> None:
    body = QueryLtsLogParams(start_time="1", end_time="2")
    missing = ListLogsRequest(log_group_id=fed["group"], log_stream_id="no-such-stream", body=body)
    with pytest.raises(ClientRequestException) as caught:
        lts_client(server).list_logs(missing)
    assert (caught.value.status_code, caught.value.error_code) == (404, "CTS.0404")
    backwards = QueryLtsLogParams(start_time="2", end_time="1")
    bad = ListLogsRequest(log_group_id=fed["group"], log_stream_id=fed["stream"], body=backwards)
    with pytest.raises(ClientRequestException) as caught:
        lts_client(server).list_logs(bad)
    assert caught.value.status_code == 400 and "start_time" in caught.value.error_msg
    unsigned = httpx.get(f"{server.url}/v2/{server.creds.project_id}/groups")
    assert unsigned.status_code == 401 and unsigned.json()["error_code"] == "CTS.0401"


def run(server: ServerProcess, *args: str) -> tuple[int, str]:
    result = runner.invoke(
        app,
        ["lts", *args, "--endpoint", server.url, "--data-dir", str(server.data_dir)],
        env={"COLUMNS": "200"},
    )
    return result.exit_code, result.stdout + result.stderr


def test_the_cli_lists_tails_and_searches(server: ServerProcess, fed: dict[str, Any]) -> None:
    wait_for(lambda: len(query(server, fed, keywords="lts-011").logs) == 1, 20, "the last record")
    code, out = run(server, "groups")
    assert code == 0 and "CTS" in out and fed["group"] in out, out
    code, out = run(server, "streams", "--json")
    assert code == 0 and json.loads(out)["log_streams"][0]["log_stream_name"] == "system-trace", out
    code, out = run(server, "search", "system-trace", "deleteServer", "--json")
    assert code == 0, out
    found = json.loads(out)
    assert found["count"] == 4 and [json.loads(log["content"])["trace_id"] for log in found["logs"]] == [
        "lts-000",
        "lts-003",
        "lts-006",
        "lts-009",
    ]
    code, out = run(server, "search", "system-trace", "deleteServer", "--limit", "3")
    assert code == 0 and "3 of 4 record(s)" in out and "deleteServer" in out and "web-6" in out, out
    code, out = run(server, "tail", fed["stream"], "--raw", "-n", "200")
    assert code == 0, out
    tailed = [json.loads(line)["trace_id"] for line in out.splitlines()]
    assert [t for t in tailed if t.startswith("lts-")] == fed["ids"]
    code, out = run(server, "tail", "system-trace", "-n", "3", "--since", "2h")
    assert code == 0 and len(out.splitlines()) == 3, out
    code, out = run(server, "tail", "no-such-stream")
    assert code == 1 and "no log stream 'no-such-stream'" in out, out


def test_the_log_query_is_a_read_the_self_audit_leaves_out(
    server: ServerProcess, fed: dict[str, Any]
) -> None:
    query(server, fed, keywords="createServer")  # a POST, but it changes nothing
    with server.client() as client:
        listed = client.get(f"/v3/{server.creds.project_id}/traces", params={"trace_name": "listLogs"})
    assert listed.status_code == 200 and listed.json()["traces"] == [], listed.text
    assert query(server, fed, keywords="listLogs").logs == []


HANDLER = """
import base64, json

def handler(event, context):
    text = json.loads(base64.b64decode(event["lts"]["data"]))
    alarms = [log for log in text["logs"] if "WARN" in json.dumps(log).upper()]
    ids = [json.loads(log["message"]).get("trace_id") for log in text["logs"]]
    found = {"ids": ids, "alarms": len(alarms), "topic": text["log_topic_id"], "owner": text["owner"]}
    return json.dumps(found)
"""


def test_an_lts_trigger_runs_the_function_on_batches_of_new_records(
    server: ServerProcess, fed: dict[str, Any]
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", HANDLER)
    project = server.creds.project_id
    function = {
        "func_name": "lts_alarms",
        "package": "default",
        "runtime": "Python3.10",
        "handler": "index.handler",
        "memory_size": 128,
        "timeout": 30,
        "code_type": "zip",
        "func_code": {"file": base64.b64encode(buffer.getvalue()).decode()},
    }
    with server.client() as client:
        made = client.post(f"/v2/{project}/fgs/functions", json=function)
        assert made.status_code < 300, made.text
        urn = made.json()["func_urn"]
        event_data = {"log_group_id": fed["group"], "log_topic_id": fed["stream"], "batch_size": 4}
        trigger = {"trigger_type_code": "LTS", "event_data": event_data}
        resp = client.post(f"/v2/{project}/fgs/triggers/{quote(urn, safe='')}", json=trigger)
        assert resp.status_code == 201, resp.text
        listed = client.get(f"/v2/{project}/fgs/triggers/{quote(urn, safe='')}").json()
        assert [t["trigger_type_code"] for t in listed] == ["LTS"]
        traces = [
            {
                "trace_id": f"trg-{i}",
                "trace_name": "deleteServer",
                "trace_type": "ApiCall",
                "trace_rating": "warning" if i % 2 else "normal",
                "service_type": "ECS",
                "resource_type": "ecs",
                "time": now_ms() - 1000,
                "user": {"id": "u" * 32, "name": "alice", "domain": {"id": "d" * 32, "name": "acme"}},
            }
            for i in range(6)
        ]
        assert client.post(f"/v3/{project}/traces", json={"traces": traces}).status_code == 200
    db = Database(f"sqlite:///{server.data_dir / 'opencts.db'}")
    try:

        def results() -> list[dict[str, Any]]:
            stmt = select(function_invocations.c.status, function_invocations.c.result).where(
                function_invocations.c.source == "trigger"
            )
            rows = db.read_sync(lambda c: c.execute(stmt.order_by(function_invocations.c.id)).all())
            done = [json.loads(json.loads(r.result)) for r in rows if r.status == "SUCCESS" and r.result]
            ids = [i for r in done for i in r["ids"]]
            return done if [i for i in ids if i.startswith("trg-")] == [f"trg-{i}" for i in range(6)] else []

        done = wait_for(results, 60, "the trigger's invocations")
    finally:
        db.close()
    assert all(len(r["ids"]) <= 4 for r in done)  # batches of at most batch_size
    assert {r["topic"] for r in done} == {fed["stream"]} and {r["owner"] for r in done} == {
        server.creds.domain_id
    }
    assert sum(r["alarms"] for r in done) >= 3  # the warning-rated traces
