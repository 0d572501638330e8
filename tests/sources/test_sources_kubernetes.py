"""The Kubernetes audit webhook: real-format ``audit.k8s.io/v1`` events, at each level and stage, as traces.

``vectors/k8s_audit_eventlist.json`` holds events as the API server's webhook backend posts them (the
documented Event type: Metadata, Request and RequestResponse levels; RequestReceived, ResponseStarted,
ResponseComplete and Panic stages; a resource, a subresource with impersonation, a non-resource URL).
Their times are moved to a minute ago, keeping their spacing, so they fall inside the retention window.
"""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from cts_helpers import Api
from opencts.cli.sources import kubeconfig
from opencts.clock import now_ms
from opencts.errors import BadRequest
from opencts.sources import kubernetes

VECTORS = Path(__file__).parent / "vectors"


def event_list() -> dict[str, Any]:
    """The vector EventList with its times moved to end a minute ago."""
    doc: dict[str, Any] = orjson.loads((VECTORS / "k8s_audit_eventlist.json").read_bytes())
    first = datetime.fromisoformat(doc["items"][0]["requestReceivedTimestamp"])
    shift = datetime.fromtimestamp(now_ms() / 1000 - 60, UTC) - first
    for item in doc["items"]:
        for key in ("requestReceivedTimestamp", "stageTimestamp"):
            moved = datetime.fromisoformat(item[key]) + shift
            item[key] = moved.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return doc


def by_id(traces: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {t["trace_id"]: t for t in traces}


def test_each_event_maps_field_by_field() -> None:
    doc = event_list()
    traces = by_id(kubernetes.to_traces(doc["items"]))
    assert len(traces) == len(doc["items"]) == 9

    received = traces["0a4376d5-307a-4e16-a049-24e017c7a9d4.RequestReceived"]
    assert received["trace_name"] == "create" and received["service_type"] == "Kubernetes"
    assert received["resource_type"] == "deployments" and received["resource_name"] == "shop/cart"
    assert received["api_version"] == "apps/v1" and received["trace_rating"] == "normal"
    assert "code" not in received and "response" not in received  # no response yet at this stage
    assert received["request"]["spec"]["replicas"] == 2  # the Request level's requestObject
    assert received["user"] == {
        "name": "alice@example.com",
        "id": "a9e1c0f2-5b7d-4f3e-9c1a-2d6b8e4f7a10",
        "type": "User",
    }
    assert received["source_ip"] == "192.168.10.23" and received["read_only"] is False
    assert received["request_id"] == "0a4376d5-307a-4e16-a049-24e017c7a9d4"
    assert received["time"] == int(
        datetime.fromisoformat(doc["items"][0]["requestReceivedTimestamp"]).timestamp() * 1000
    )

    complete = traces["0a4376d5-307a-4e16-a049-24e017c7a9d4.ResponseComplete"]
    assert complete["code"] == "201" and complete["response"]["metadata"]["uid"].startswith("6f3b")
    assert complete["message"]["level"] == "RequestResponse"
    assert complete["message"]["annotations"]["authorization.k8s.io/decision"] == "allow"

    secret = traces["f2b1c3d4-9e8f-4a7b-b6c5-d4e3f2a1b0c9.ResponseComplete"]
    assert secret["user"]["type"] == "ServiceAccount" and secret["read_only"] is True
    assert "request" not in secret and "response" not in secret  # Metadata level: no objects

    denied = traces["7d6e5f4a-3b2c-4d1e-8f0a-9b8c7d6e5f4a.ResponseComplete"]
    assert (denied["code"], denied["trace_rating"]) == ("403", "incident")
    assert denied["source_ip"] == "203.0.113.7"  # the first of sourceIPs is the client
    assert denied["message"]["responseStatus"]["reason"] == "Forbidden"

    watch = traces["c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f.ResponseStarted"]
    assert watch["trace_name"] == "watch" and watch["resource_name"] == "shop"  # a collection, by namespace

    exec_ = traces["9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d.ResponseComplete"]
    assert exec_["resource_type"] == "pods/exec" and exec_["source_ip"] == "2001:db8::17"
    assert exec_["message"]["impersonatedUser"]["username"] == "system:serviceaccount:shop:debugger"

    panic = traces["5f4e3d2c-1b0a-4f9e-8d7c-6b5a4f3e2d1c.Panic"]
    assert (panic["code"], panic["trace_rating"]) == ("500", "incident")

    healthz = traces["1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b.ResponseComplete"]
    assert healthz["resource_type"] == "nonResourceURL" and healthz["resource_name"] == "/healthz"

    conflict = traces["2f3e4d5c-6b7a-4898-a7b6-c5d4e3f2a1b0.ResponseComplete"]
    assert (conflict["code"], conflict["trace_rating"]) == ("409", "warning")


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda e: e.pop("auditID"), "items[3]: auditID must be a non-empty string"),
        (lambda e: e.update(stage="Done"), "stage must be one of RequestReceived"),
        (lambda e: e.update(level="None"), "level must be one of Metadata"),
        (lambda e: e.update(requestReceivedTimestamp="yesterday"), "'yesterday' is not an RFC 3339 time"),
        (lambda e: e.update(sourceIPs=["not-an-ip"]), "sourceIPs must be a list of IP addresses"),
        (lambda e: e["responseStatus"].update(code="403"), "responseStatus.code must be an HTTP status"),
        (lambda e: e.update(user={"groups": []}), "user.username must be a string"),
        (lambda e: e["objectRef"].pop("resource"), "objectRef.resource must be a non-empty string"),
        (lambda e: e.update(auditID="a b"), "is not an id"),
    ],
)
def test_a_malformed_event_is_named_with_its_index_and_why(change: Any, words: str) -> None:
    items = copy.deepcopy(event_list()["items"])
    change(items[3])
    with pytest.raises(BadRequest, match="items\\[3\\]") as raised:
        kubernetes.to_traces(items)
    assert words in str(raised.value) and "nothing of the batch was stored" in str(raised.value)


def test_the_body_must_be_an_audit_v1_event_list() -> None:
    for body in (b"[]", b'{"kind": "Event"}', b'{"kind": "EventList", "apiVersion": "audit.k8s.io/v1beta1"}'):
        with pytest.raises(BadRequest):
            kubernetes.parse_event_list(body)
    assert kubernetes.parse_event_list(b'{"kind": "EventList", "apiVersion": "audit.k8s.io/v1"}') == []


async def webhook(api: Api) -> httpx.AsyncClient:
    resp = await api.client.post(
        f"/v3/projects/{api.project}/source-tokens", json={"name": "prod-cluster", "source": "kubernetes"}
    )
    token = resp.json()["source_token"]["token"]
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api.app),
        base_url="http://127.0.0.1:8080",
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_an_event_list_posted_with_a_source_token_becomes_traces_once(api: Api) -> None:
    doc = event_list()
    path = f"/v3/{api.project}/sources/kubernetes"
    async with await webhook(api) as client:
        first = await client.post(path, json=doc)
        assert first.status_code == 200, first.text
        assert (first.json()["accepted"], first.json()["duplicates"]) == (9, 0)
        again = await client.post(path, json=doc)  # the API server retries a batch it is unsure of
        assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 9)

    listed = (await api.list(service_type="Kubernetes", limit=50)).json()["traces"]
    assert len(listed) == 9
    stored = by_id(listed)["9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d.ResponseComplete"]
    assert stored["resource_type"] == "pods/exec" and stored["user"]["name"] == "alice@example.com"
    assert stored["submitter"] == {
        "type": "user",
        "user_id": stored["submitter"]["user_id"],
        "user_name": "prod-cluster",
        "auth": "source",
    }
    assert orjson.loads(stored["message"])["stage"] == "ResponseComplete"
    denied = (await api.list(service_type="Kubernetes", trace_rating="incident")).json()["traces"]
    assert {t["code"] for t in denied} == {"403", "500"}
    pods = (await api.list(service_type="Kubernetes", resource_type="pods", resource_name="shop")).json()
    assert [t["trace_name"] for t in pods["traces"]] == ["watch"]


async def test_one_malformed_event_stores_nothing_of_the_batch(api: Api) -> None:
    doc = event_list()
    doc["items"][5]["stage"] = "Finished"
    async with await webhook(api) as client:
        resp = await client.post(f"/v3/{api.project}/sources/kubernetes", json=doc)
        assert resp.status_code == 400 and resp.json()["error_code"] == "CTS.0001"
        assert resp.json()["error_msg"].startswith("items[5] (auditID '9a8b7c6d-")
        assert resp.headers["x-request-id"]
        too_old = event_list()
        too_old["items"][2]["requestReceivedTimestamp"] = "2020-01-01T00:00:00.000000Z"
        resp = await client.post(f"/v3/{api.project}/sources/kubernetes", json=too_old)
        assert resp.status_code == 400 and "items[2]" in resp.json()["error_msg"]
        assert "retention" in resp.json()["error_msg"]
        bad_json = await client.post(
            f"/v3/{api.project}/sources/kubernetes",
            content=b"{",
            headers={"Content-Type": "application/json"},
        )
        assert bad_json.status_code == 400 and bad_json.json()["error_code"] == "CTS.0002"
    assert (await api.list(service_type="Kubernetes")).json()["traces"] == []


def test_a_huge_response_object_is_kept_as_what_identifies_it() -> None:
    """A list at the RequestResponse level answers with the whole collection: kept by size, not refused."""
    items = copy.deepcopy(event_list()["items"])
    pods = [
        {"metadata": {"name": f"p-{i}", "namespace": "shop"}, "spec": {"x": "y" * 200}} for i in range(3000)
    ]
    items[4]["level"] = "RequestResponse"
    items[4]["responseObject"] = {
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "9"},
        "items": pods,
    }
    [trace] = kubernetes.to_traces([items[4]])
    assert trace["response"]["kind"] == "PodList" and trace["response"]["items"] == 3000
    assert trace["response"]["metadata"] == {"resourceVersion": "9"}
    assert trace["response"]["truncated"].endswith(f"more than OpenCTS keeps ({kubernetes.MAX_OBJECT_BYTES})")
    small = kubernetes.to_traces([items[1]])[0]
    assert small["response"] == items[1]["responseObject"]  # whole below the limit


def test_the_webhook_kubeconfig_carries_the_url_token_and_ca() -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    text = kubeconfig("https://cts.example.com/v3/p/sources/kubernetes", 'ocst_a"b: c', pem)
    config = yaml.safe_load(text)
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == "https://cts.example.com/v3/p/sources/kubernetes"
    assert base64.b64decode(cluster["certificate-authority-data"]) == pem
    assert config["users"][0]["user"]["token"] == 'ocst_a"b: c'  # quoted: nothing in it breaks the file
    assert config["contexts"][0]["context"] == {"cluster": "opencts", "user": "opencts-source-token"}
