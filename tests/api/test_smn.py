"""The SMN v2 API in process: shapes and types the SDK reads, errors, confirmation links, the outbox API."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from cts_helpers import Api
from opencts.smn.service import SmnService


@pytest.fixture(autouse=True)
def _smtp_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    """Email subscriptions need an SMTP relay configured; nothing here sends, so none has to listen."""
    monkeypatch.setenv("OPENCTS_SMTP_HOST", "127.0.0.1")


JSON = {"Accept": "application/json"}


def base(api: Api) -> str:
    return f"/v2/{api.project}/notifications"


def smn(api: Api) -> SmnService:
    service: SmnService = api.app.state.services.smn
    return service


async def make_topic(api: Api, name: str = "alarms", display: str = "Alarms") -> str:
    resp = await api.client.post(f"{base(api)}/topics", json={"name": name, "display_name": display})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["topic_urn"])


async def subscribe(api: Api, topic: str, endpoint: str = "ops@example.com", **extra: Any) -> str:
    body = {"protocol": "email", "endpoint": endpoint, **extra}
    resp = await api.client.post(f"{base(api)}/topics/{topic}/subscriptions", json=body)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["subscription_urn"])


def anonymous(api: Api) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://127.0.0.1:8080")


async def test_topic_lifecycle_with_the_types_the_sdk_expects(api: Api) -> None:
    urn = await make_topic(api)
    assert urn == f"urn:smn:local-1:{api.project}:alarms"
    detail = (await api.client.get(f"{base(api)}/topics/{urn}")).json()
    assert detail["name"] == "alarms" and detail["display_name"] == "Alarms"
    assert isinstance(detail["push_policy"], int) and len(detail["topic_id"]) == 32
    assert detail["create_time"].endswith("Z") and len(detail["create_time"]) == 20
    assert detail["request_id"]
    resp = await api.client.put(f"{base(api)}/topics/{urn}", json={"display_name": "Renamed"})
    assert resp.status_code == 200 and set(resp.json()) == {"request_id"}
    assert (await api.client.get(f"{base(api)}/topics/{urn}")).json()["display_name"] == "Renamed"
    assert (await api.client.delete(f"{base(api)}/topics/{urn}")).status_code == 200
    assert (await api.client.get(f"{base(api)}/topics/{urn}")).status_code == 404


async def test_list_topics_counts_everything_and_pages(api: Api) -> None:
    for i in range(5):
        await make_topic(api, f"t{i}", f"Display {i}")
    page = (await api.client.get(f"{base(api)}/topics", params={"offset": 1, "limit": 2})).json()
    assert page["topic_count"] == 5 and len(page["topics"]) == 2
    exact = (await api.client.get(f"{base(api)}/topics", params={"name": "t3"})).json()
    assert [t["name"] for t in exact["topics"]] == ["t3"]
    fuzzy = (await api.client.get(f"{base(api)}/topics", params={"fuzzy_display_name": "play 4"})).json()
    assert [t["name"] for t in fuzzy["topics"]] == ["t4"]
    none = (await api.client.get(f"{base(api)}/topics", params={"fuzzy_name": "%"})).json()
    assert none["topic_count"] == 0


@pytest.mark.parametrize(
    ("path", "body", "code", "fragment"),
    [
        ("/topics", {"name": "-bad", "display_name": "x"}, "SMN.00010001", "name:"),
        ("/topics", {"display_name": "x"}, "SMN.00010001", "name: is required"),
        ("/topics", b"{nope", "SMN.00010001", "not valid JSON"),
        ("/topics", [1, 2], "SMN.00010001", "must be a JSON object"),
    ],
)
async def test_bad_topic_requests_are_400(api: Api, path: str, body: Any, code: str, fragment: str) -> None:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    resp = await api.client.post(
        base(api) + path, content=content, headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == code and fragment in resp.json()["message"]


async def test_errors_for_duplicates_unknowns_and_paging(api: Api) -> None:
    await make_topic(api)
    dup = await api.client.post(f"{base(api)}/topics", json={"name": "alarms", "display_name": "x"})
    assert dup.status_code == 409
    assert (await api.client.get(f"{base(api)}/topics/urn:smn:local-1:x:nope")).status_code == 404
    assert (await api.client.get(f"{base(api)}/topics", params={"limit": 0})).status_code == 400
    assert (await api.client.get(f"{base(api)}/topics", params={"offset": "x"})).status_code == 400
    assert (await api.client.get(f"{base(api)}/subscriptions", params={"status": 9})).status_code == 400
    assert (await api.client.get(f"{base(api)}/deliveries", params={"status": "lost"})).status_code == 400
    other = "f" * 32
    assert (await api.client.get(f"/v2/{other}/notifications/topics")).status_code == 403


async def test_unsupported_protocols_name_the_supported_ones(api: Api) -> None:
    topic = await make_topic(api)
    resp = await api.client.post(
        f"{base(api)}/topics/{topic}/subscriptions", json={"protocol": "wechat", "endpoint": "x"}
    )
    assert resp.status_code == 400
    assert "supported: email, sms, http, https" in resp.json()["message"]
    protocols = (await api.client.get("/v2/notifications/protocols")).json()
    assert protocols["protocols"] == ["email", "sms", "http", "https"] and protocols["request_id"]


async def test_subscriptions_start_unconfirmed_and_confirm_by_link(api: Api) -> None:
    topic = await make_topic(api)
    urn = await subscribe(api, topic, remark="day shift")
    assert urn.startswith(topic + ":") and len(urn.rsplit(":", 1)[1]) == 32
    # the same endpoint again is the same subscription (a fresh confirmation; the new remark wins)
    assert await subscribe(api, topic, remark="night shift") == urn
    listed = (await api.client.get(f"{base(api)}/topics/{topic}/subscriptions")).json()
    assert listed["subscription_count"] == 1
    sub = listed["subscriptions"][0]
    assert sub["status"] == 0 and sub["owner"] == api.project and sub["remark"] == "night shift"
    assert sub["extension"] == {"verification_code_enabled": False} and sub["filter_polices"] == []

    token = smn(api).signer.token(urn)
    async with anonymous(api) as browser:
        first = await browser.get(
            "/v2/notifications/subscriptions/confirm", params={"token": token}, headers=JSON
        )
        assert first.status_code == 200 and first.json()["result"] == "confirmed"
        again = await browser.get(
            "/v2/notifications/subscriptions/confirm",
            params={"token": token},
            headers={"Accept": "text/html"},
        )
        assert again.status_code == 200 and "Already confirmed" in again.text
        bad = await browser.get("/v2/notifications/subscriptions/confirm", params={"token": "forged"})
        assert bad.status_code == 404
    confirmed = (await api.client.get(f"{base(api)}/subscriptions", params={"status": 1})).json()
    assert [s["subscription_urn"] for s in confirmed["subscriptions"]] == [urn]
    assert (await api.client.delete(f"{base(api)}/subscriptions/{urn}")).status_code == 200
    assert (await api.client.get(f"{base(api)}/subscriptions")).json()["subscription_count"] == 0
    assert (await api.client.delete(f"{base(api)}/subscriptions/{urn}")).status_code == 404


async def test_unsubscribe_link_shows_a_page_and_posts(api: Api) -> None:
    topic = await make_topic(api)
    urn = await subscribe(api, topic)
    token = smn(api).signer.token(urn)
    async with anonymous(api) as browser:
        await browser.get("/v2/notifications/subscriptions/confirm", params={"token": token})
        page = await browser.get("/v2/notifications/subscriptions/unsubscribe", params={"token": token})
        assert page.status_code == 200 and "<form method='post'" in page.text
        assert (await api.client.get(f"{base(api)}/subscriptions")).json()["subscriptions"][0]["status"] == 1
        done = await browser.post(
            "/v2/notifications/subscriptions/unsubscribe", params={"token": token}, headers=JSON
        )
        assert done.json()["result"] == "unsubscribed"
    assert (await api.client.get(f"{base(api)}/subscriptions")).json()["subscriptions"][0]["status"] == 3


async def test_publish_queues_for_confirmed_subscribers_only(api: Api) -> None:
    topic = await make_topic(api)
    confirmed = await subscribe(api, topic, "a@example.com")
    await subscribe(api, topic, "b@example.com")
    async with anonymous(api) as browser:
        token = smn(api).signer.token(confirmed)
        await browser.get("/v2/notifications/subscriptions/confirm", params={"token": token})
    structure = orjson.dumps({"default": "d", "email": "e"}).decode()
    resp = await api.client.post(
        f"{base(api)}/topics/{topic}/publish",
        json={"subject": "s", "message_structure": structure, "time_to_live": "60"},
    )
    assert resp.status_code == 200, resp.text
    message_id = resp.json()["message_id"]
    rows = (await api.client.get(f"{base(api)}/deliveries", params={"message_id": message_id})).json()
    assert rows["delivery_count"] == 1
    row = rows["deliveries"][0]
    assert (
        row["subscription_urn"] == confirmed and row["status"] == "pending" and row["kind"] == "notification"
    )
    assert row["expires_at"] - row["created_at"] == 60_000
    retry = await api.client.post(f"{base(api)}/deliveries/{row['id']}/retry")
    assert retry.status_code == 409 and "only dead" in retry.json()["message"]
    assert (await api.client.post(f"{base(api)}/deliveries/999999/retry")).status_code == 404
    assert (await api.client.post(f"{base(api)}/deliveries/x/retry")).status_code == 400


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "give message or message_structure"),
        ({"message": "m", "time_to_live": "99999"}, "time_to_live"),
        ({"message_structure": '{"email": "x"}'}, '"default" key'),
        ({"message": "m", "subject": "a\nb"}, "line breaks"),
    ],
)
async def test_bad_publish_is_400(api: Api, body: dict[str, Any], fragment: str) -> None:
    topic = await make_topic(api)
    resp = await api.client.post(f"{base(api)}/topics/{topic}/publish", json=body)
    assert resp.status_code == 400 and fragment in resp.json()["message"]


async def test_without_smtp_email_deliveries_wait_with_a_reason(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subscription made while SMTP was configured, and the relay since taken out of the settings."""
    topic = await make_topic(api)
    await subscribe(api, topic)
    monkeypatch.setattr(smn(api).settings, "smtp_host", None)
    await smn(api).worker.drain()
    [row] = (await api.client.get(f"{base(api)}/deliveries")).json()["deliveries"]
    assert row["kind"] == "confirmation" and row["status"] == "pending" and row["attempts"] == 1
    assert "OPENCTS_SMTP_HOST" in row["last_error"]


async def test_public_and_protected_routes(api: Api) -> None:
    async with anonymous(api) as nobody:
        cert = await nobody.get("/v2/notifications/signing-cert.pem")
        assert cert.status_code == 200 and cert.text.startswith("-----BEGIN CERTIFICATE-----")
        assert (await nobody.get("/v2/notifications/protocols")).status_code == 401
        assert (await nobody.get(f"{base(api)}/topics")).status_code == 401


async def test_smn_writes_are_audited(api: Api) -> None:
    await make_topic(api, "audited")  # answered only once its audit trace is durable
    traces = (await api.list(trace_name="createTopic")).json()["traces"]
    assert len(traces) == 1
    assert traces[0]["service_type"] == "SMN" and traces[0]["resource_name"] == "audited"


async def test_every_error_is_in_smn_shape(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Authentication, query validation, domain and unexpected errors alike: SMN shape, SMN code."""

    def shape(resp: httpx.Response, status: int, code: str) -> str:
        body = resp.json()
        assert resp.status_code == status and body["code"] == code, resp.text
        assert set(body) == {"request_id", "code", "message"}
        assert resp.headers["x-request-id"] == body["request_id"]
        return str(body["message"])

    async with anonymous(api) as nobody:
        shape(await nobody.get(f"{base(api)}/topics"), 401, "SMN.00010002")
    shape(await api.client.get(f"/v2/{'f' * 32}/notifications/topics"), 403, "SMN.00010003")
    assert "limit" in shape(
        await api.client.get(f"{base(api)}/topics", params={"limit": 0}), 400, "SMN.00010001"
    )
    missing = f"urn:smn:local-1:{api.project}:missing"
    assert missing in shape(await api.client.get(f"{base(api)}/topics/{missing}"), 404, "SMN.00010008")
    shape(await api.client.post(f"{base(api)}/deliveries/999999/retry"), 404, "SMN.00010004")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug with a secret in its text")

    monkeypatch.setattr("opencts.smn.topics.list_topics", broken)
    message = shape(await api.client.get(f"{base(api)}/topics"), 500, "SMN.00010011")
    assert "secret" not in message and "Traceback" not in message
