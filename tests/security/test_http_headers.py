"""Browser hygiene: hardening headers on every response, /docs without any third-party host, a /health
that tells an anonymous caller nothing but that the service is up."""

from __future__ import annotations

import re

import httpx

from cts_helpers import Api


def anonymous(api: Api) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://127.0.0.1:8080")


def assert_hardened(resp: httpx.Response) -> None:
    where = f"{resp.request.method} {resp.request.url.path} -> {resp.status_code}"
    assert resp.headers.get("x-content-type-options") == "nosniff", where
    assert resp.headers.get("x-frame-options") == "DENY", where
    csp = resp.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp, where
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]


async def test_every_kind_of_response_carries_the_hardening_headers(api: Api) -> None:
    async with anonymous(api) as browser:
        answers = [
            await browser.get("/docs"),
            await browser.get("/docs/init.js"),
            await browser.get("/openapi.json"),
            await browser.get("/health"),
            await browser.get("/no/such/page", headers={"Accept": "text/html"}),
            await browser.get(f"/v3/{api.project}/traces"),  # 401
            await browser.get("/v2/notifications/subscriptions/confirm", params={"token": "forged"}),
            await browser.get("/v2/notifications/subscriptions/unsubscribe", params={"token": "forged"}),
        ]
    answers.append(await api.list())  # a signed 200
    for resp in answers:
        assert_hardened(resp)


async def test_docs_load_everything_from_this_service(api: Api) -> None:
    async with anonymous(api) as browser:
        page = await browser.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "<script>" not in page.text  # no inline script: the CSP allows none
        refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert len(refs) == 3 and not re.search(r"https?://", page.text)
        for ref in refs:
            assert ref.startswith("/") and not ref.startswith("//"), ref
            asset = await browser.get(ref)
            assert asset.status_code == 200, ref
            kind = "text/css" if ref.endswith(".css") else "text/javascript"
            assert asset.headers["content-type"].startswith(kind), (ref, asset.headers["content-type"])
        init = (await browser.get("/docs/init.js")).text
        assert '"/openapi.json"' in init and "validatorUrl: null" in init
        bundle = await browser.get("/docs/assets/swagger-ui-bundle.js")
        assert "SwaggerUIBundle" in bundle.text and len(bundle.content) > 500_000
        assert (await browser.get("/openapi.json")).json()["info"]["title"] == "OpenCTS"
        assert (await browser.get("/redoc")).status_code == 404  # FastAPI's ReDoc page loads from a CDN


async def test_health_tells_an_anonymous_caller_only_that_the_service_is_up(api: Api) -> None:
    async with anonymous(api) as browser:
        resp = await browser.get("/health")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}
