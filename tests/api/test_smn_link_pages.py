"""The confirmation and unsubscribe links a person opens: HTML pages (errors too), never built from Host."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx
import pytest

from cts_helpers import Api
from opencts.smn.service import SmnService

#: what Firefox and Chrome send when a link is clicked
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
CONFIRM = "/v2/notifications/subscriptions/confirm"
UNSUBSCRIBE = "/v2/notifications/subscriptions/unsubscribe"


@pytest.fixture(autouse=True)
def _smtp_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENCTS_SMTP_HOST", "127.0.0.1")


class Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.actions: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "form":
            self.actions.append(dict(attrs).get("action") or "")
        self._in_title = tag == "title"

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def parse(page: str) -> Forms:
    forms = Forms()
    forms.feed(page)
    return forms


async def subscription(api: Api) -> tuple[str, str]:
    base = f"/v2/{api.project}/notifications"
    topic = (await api.client.post(f"{base}/topics", json={"name": "pages", "display_name": ""})).json()
    body = {"protocol": "email", "endpoint": "ops@example.com"}
    resp = await api.client.post(f"{base}/topics/{topic['topic_urn']}/subscriptions", json=body)
    assert resp.status_code == 200, resp.text
    urn = str(resp.json()["subscription_urn"])
    smn: SmnService = api.app.state.services.smn
    return urn, smn.signer.token(urn)


def browser(api: Api, host: str = "127.0.0.1:8080") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api.app), base_url=f"http://{host}", headers=BROWSER
    )


@pytest.mark.parametrize("accept", [BROWSER["Accept"], "*/*", None])
async def test_the_confirmation_link_answers_a_page(api: Api, accept: str | None) -> None:
    urn, token = await subscription(api)
    async with browser(api) as client:
        headers = {"Accept": accept} if accept else {}
        if accept is None:
            client.headers.pop("Accept")
        resp = await client.get(CONFIRM, params={"token": token}, headers=headers)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert parse(resp.text).title == "Subscription confirmed" and urn in resp.text


async def test_a_program_that_asks_for_json_gets_json(api: Api) -> None:
    _, token = await subscription(api)
    async with browser(api) as client:
        resp = await client.get(CONFIRM, params={"token": token}, headers={"Accept": "application/json"})
    assert resp.json()["result"] == "confirmed"


@pytest.mark.parametrize("path", [CONFIRM, UNSUBSCRIBE])
async def test_a_bad_link_answers_a_page_too(api: Api, path: str) -> None:
    async with browser(api) as client:
        resp = await client.get(path, params={"token": "forged"})
        as_json = await client.get(path, params={"token": "forged"}, headers={"Accept": "application/json"})
    assert resp.status_code == 404 and resp.headers["content-type"].startswith("text/html")
    assert parse(resp.text).title == "Link not valid"
    assert as_json.status_code == 404 and as_json.json()["code"] == "SMN.00011027"


async def test_the_unsubscribe_form_ignores_the_host_header(api: Api) -> None:
    urn, token = await subscription(api)
    async with browser(api, host="evil.example:666") as client:
        page = await client.get(UNSUBSCRIBE, params={"token": token})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        [action] = parse(page.text).actions
        assert "evil.example" not in page.text and "://" not in action
        # the relative action, resolved against the page as a browser does, is the unsubscribe link
        target = httpx.URL(urljoin(str(page.url), action))
        assert target.path == UNSUBSCRIBE and target.params["token"] == token
        done = await client.post(str(target))
    assert done.status_code == 200 and parse(done.text).title == "Unsubscribed"
    listed = (await api.client.get(f"/v2/{api.project}/notifications/subscriptions")).json()
    assert [(s["subscription_urn"], s["status"]) for s in listed["subscriptions"]] == [(urn, 3)]
