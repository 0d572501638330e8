"""Source tokens: created, listed and revoked through IAM, stored hashed, audited, and good for one webhook.

The refusal is checked over the whole route table (every route, every method, as read from the app), so a
route added later is held to it without this file changing.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import httpx
import orjson
from k8s_events import event_list
from sqlalchemy import select

from cts_helpers import PUBLIC_ROUTES, Api, TraceFactory, api_routes
from opencts.api.deps import Services
from opencts.store.tables import source_tokens

_PARAM = re.compile(r"{(\w+)}")


async def create_token(api: Api, name: str, source: str, project: str | None = None) -> dict[str, Any]:
    resp = await api.client.post(
        f"/v3/projects/{project or api.project}/source-tokens", json={"name": name, "source": source}
    )
    assert resp.status_code == 201, resp.text
    made: dict[str, Any] = resp.json()["source_token"]
    return made


def bearer(api: Api, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api.app),
        base_url="http://127.0.0.1:8080",
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_a_token_is_shown_once_stored_hashed_listed_without_it_and_revoked(api: Api) -> None:
    made = await create_token(api, "cluster-prod", "kubernetes")
    token = made["token"]
    assert token.startswith("ocst_") and len(token) > 40
    assert made["status"] == "active" and made["source"] == "kubernetes" and made["project_id"] == api.project

    services: Services = api.app.state.services
    rows = services.db.read_sync(lambda c: list(c.execute(select(source_tokens))))
    assert [r.token_hash for r in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in repr([tuple(r) for r in rows])

    listed = (await api.client.get(f"/v3/projects/{api.project}/source-tokens")).json()["source_tokens"]
    assert [t["name"] for t in listed] == ["cluster-prod"] and "token" not in listed[0]
    assert token not in orjson.dumps(listed).decode()

    async with bearer(api, token) as webhook:
        ok = await webhook.post(f"/v3/{api.project}/sources/kubernetes", json=event_list("a-1"))
        assert ok.status_code == 200, ok.text
        resp = await api.client.delete(f"/v3/projects/{api.project}/source-tokens/{made['id']}")
        assert resp.status_code == 200 and resp.json()["source_token"]["status"] == "revoked"
        refused = await webhook.post(f"/v3/{api.project}/sources/kubernetes", json=event_list("a-2"))
        assert refused.status_code == 401 and "revoked" in refused.json()["error_msg"]

    # a revoked name may be used again; a working one may not
    again = await create_token(api, "cluster-prod", "kubernetes")
    dup = await api.client.post(
        f"/v3/projects/{api.project}/source-tokens", json={"name": "cluster-prod", "source": "kubernetes"}
    )
    assert dup.status_code == 409 and dup.json()["error_code"] == "CTS.0409"
    assert again["id"] != made["id"]


async def test_creation_and_revocation_are_audited_and_the_token_is_not_in_the_trail(api: Api) -> None:
    made = await create_token(api, "minio", "s3")
    await api.client.delete(f"/v3/projects/{api.project}/source-tokens/{made['id']}")
    resp = await api.list(service_type="IAM", resource_type="sourceToken", limit=10)
    traces = resp.json()["traces"]
    assert sorted(t["trace_name"] for t in traces) == ["createSourceToken", "deleteSourceToken"]
    deleted = next(t for t in traces if t["trace_name"] == "deleteSourceToken")
    assert deleted["resource_id"] == made["id"]
    created = next(t for t in traces if t["trace_name"] == "createSourceToken")
    assert created["resource_name"] == "minio"
    assert made["token"] not in orjson.dumps(traces).decode()


async def test_bad_requests_are_refused_in_cts_shape(api: Api) -> None:
    path = f"/v3/projects/{api.project}/source-tokens"
    for body, word in (
        ({"name": "x", "source": "ftp"}, "source must be one of"),
        ({"name": "bad name!", "source": "s3"}, "source token name"),
        ({"name": "x", "source": "s3", "extra": 1}, "extra"),
    ):
        resp = await api.client.post(path, json=body)
        assert resp.status_code == 400 and word in resp.json()["error_msg"], resp.text
    missing = await api.client.delete(f"{path}/{'0' * 32}")
    assert missing.status_code == 404 and missing.json()["error_code"] == "CTS.0404"


async def test_a_token_ingests_only_into_its_project_from_its_source(api: Api) -> None:
    kube = (await create_token(api, "kube", "kubernetes"))["token"]
    async with bearer(api, kube) as webhook:
        other = await webhook.post(f"/v3/{'f' * 32}/sources/kubernetes", json=event_list("b-1"))
        assert other.status_code == 403 and other.json()["error_code"] == "CTS.0403"
        wrong_source = await webhook.post(f"/v3/{api.project}/sources/s3", json={"Records": []})
        assert wrong_source.status_code == 403
        assert "may only send kubernetes events" in wrong_source.json()["error_msg"]
    async with bearer(api, "ocst_" + "x" * 43) as unknown:
        resp = await unknown.post(f"/v3/{api.project}/sources/kubernetes", json=event_list("b-2"))
        assert resp.status_code == 401 and "unknown source token" in resp.json()["error_msg"]


async def test_a_source_token_is_refused_on_every_other_route(api: Api) -> None:
    tokens = {
        kind: (await create_token(api, f"t-{kind}", kind))["token"]
        for kind in ("kubernetes", "s3", "generic")
    }
    own = {"kubernetes": "putKubernetesAudit", "s3": "putBucketEvents", "generic": "putTraces"}
    # the console's pages answer HTML and redirect to their login form: tests/console checks them
    routes = [r for r in api_routes(api.app.routes) if not r.path.startswith("/console")]
    assert len(routes) >= 60
    fill = {"project_id": api.project, "domain_id": api.creds.domain_id, "notification_type": "smn"}
    checked = 0
    for kind, token in tokens.items():
        async with bearer(api, token) as client:
            for route in routes:
                if route.name in PUBLIC_ROUTES or route.name == own.get(kind):
                    continue
                path = _PARAM.sub(lambda m: fill.get(m[1], f"no-such-{m[1]}"), route.path)
                for method in sorted(route.methods or ()):
                    resp = await client.request(method, path, json={})
                    where = f"{kind} token: {method} {route.path} ({route.name}) -> {resp.status_code}"
                    assert resp.status_code in (401, 403), where
                    checked += 1
    assert checked >= 3 * 60


async def test_a_generic_token_posts_cts_traces_to_the_ingest_api_of_its_project(
    api: Api, make_trace: TraceFactory
) -> None:
    token = (await create_token(api, "shipper", "generic"))["token"]
    async with bearer(api, token) as shipper:
        ok = await shipper.post(f"/v3/{api.project}/traces", json={"traces": [make_trace(trace_id="g-1")]})
        assert ok.status_code == 200 and ok.json()["accepted"] == 1, ok.text
        other = await shipper.post(f"/v3/{'f' * 32}/traces", json={"traces": [make_trace()]})
        assert other.status_code == 403 and other.json()["error_code"] == "CTS.0403"
        webhook = await shipper.post(f"/v3/{api.project}/sources/kubernetes", json=event_list("g-2"))
        assert webhook.status_code == 403 and "to its project's ingest API" in webhook.json()["error_msg"]
        reading = await shipper.get(f"/v3/{api.project}/traces", params={"trace_type": "system"})
        assert reading.status_code == 403
    stored = (await api.list(trace_type="system", trace_id="g-1")).json()["traces"]
    assert [t["submitter"]["auth"] for t in stored] == ["source"]
    assert stored[0]["submitter"]["user_name"] == "shipper"
