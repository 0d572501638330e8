"""Every route's errors have one shape: a 4xx, an ``X-Request-Id`` header, and the CTS body
``{"error_code": "CTS.…", "error_msg": …, "request_id": …}`` (SMN's routes: ``{"request_id", "code":
"SMN.…", "message"}``, which the SDK reads into the same fields).

The routes are read from the app itself, so a route added later is held to the same shape without this
file changing. Each is called three ways: without credentials, signed but naming another project or
account, and signed in the caller's own project with bad input (a body that is not JSON, ids that do
not exist).
"""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from fastapi.routing import APIRoute

from cts_helpers import PUBLIC_ROUTES, Api, api_routes, error_shape_problem

_PARAM = re.compile(r"{(\w+)}")


def url(route: APIRoute, project_id: str, domain_id: str) -> str:
    """The route's path with every parameter filled: the given project and account, ids that do not exist."""
    fill = {"project_id": project_id, "domain_id": domain_id, "notification_type": "smn"}
    return _PARAM.sub(lambda m: fill.get(m[1], f"no-such-{m[1].replace('_', '-')}"), route.path)


def assert_error_shape(route: APIRoute, resp: httpx.Response) -> None:
    problem = error_shape_problem(route, resp)
    assert problem is None, problem


async def call(client: httpx.AsyncClient, route: APIRoute, method: str, path: str) -> httpx.Response:
    """A call whose body (when the method takes one) is not JSON."""
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    content = b'{"not json' if method in ("POST", "PUT", "PATCH") else None
    return await client.request(method, path, content=content, headers=headers)


@pytest.fixture
def routes(api: Api) -> list[APIRoute]:
    # the console's pages answer HTML and redirect to their login form: tests/console checks them
    found = [r for r in api_routes(api.app.routes) if not r.path.startswith("/console")]
    assert len(found) >= 60, f"the walk over app.routes found only {len(found)} routes"
    return found


async def test_without_credentials_every_protected_route_is_a_401_in_its_shape(
    api: Api, routes: list[APIRoute]
) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://t") as nobody:
        for route in routes:
            for method in sorted(route.methods or ()):
                resp = await call(nobody, route, method, url(route, api.project, api.creds.domain_id))
                if route.name in PUBLIC_ROUTES:
                    if resp.status_code >= 400:
                        assert_error_shape(route, resp)
                    continue
                assert resp.status_code == 401, f"{method} {route.path}: {resp.status_code} {resp.text[:200]}"
                assert_error_shape(route, resp)


async def test_another_project_or_account_is_a_403_in_its_shape(api: Api, routes: list[APIRoute]) -> None:
    elsewhere = uuid.uuid4().hex
    scoped = [r for r in routes if "{project_id}" in r.path or "{domain_id}" in r.path]
    assert scoped
    for route in scoped:
        for method in sorted(route.methods or ()):
            resp = await call(api.client, route, method, url(route, elsewhere, elsewhere))
            assert resp.status_code == 403, f"{method} {route.path}: {resp.status_code} {resp.text[:200]}"
            assert_error_shape(route, resp)


async def test_bad_input_in_ones_own_project_is_a_4xx_in_its_shape(api: Api, routes: list[APIRoute]) -> None:
    checked = 0
    for route in routes:
        params = set(_PARAM.findall(route.path)) - {"project_id", "domain_id", "notification_type"}
        for method in sorted(route.methods or ()):
            if route.name in PUBLIC_ROUTES - {"login"} or not (params or method in ("POST", "PUT", "PATCH")):
                continue  # nothing to get wrong: a list, or a page anyone may fetch
            resp = await call(api.client, route, method, url(route, api.project, api.creds.domain_id))
            assert_error_shape(route, resp)
            checked += 1
    assert checked >= 30
