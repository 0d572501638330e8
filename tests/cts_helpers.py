"""Helpers the tests share that are not fixtures: types to annotate fixture arguments with, row and
client builders. Fixtures live in conftest.py; scaffolding the benchmarks share too lives in opencts.testing.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from sqlalchemy import Connection
from starlette.routing import BaseRoute

from opencts.api.app import create_app
from opencts.api.smn import SmnRoute
from opencts.client.signing import HmacAuth
from opencts.config import Settings
from opencts.iam import credentials, groups, users
from opencts.iam.bootstrap import BootstrapCredentials, read_credentials
from opencts.iam.secrets import SecretBox, parse_master_key
from opencts.store.trace_log import TraceRow
from opencts.testing.server import ServerProcess

#: SMN settings for tests that watch deliveries: idle workers look often and retries come fast
FAST_SMN: dict[str, Any] = {
    "smn_poll_seconds": 0.1,
    "smn_retry_base_seconds": 0.1,
    "smn_send_timeout_seconds": 2,
    "smn_lease_seconds": 5,
}

TraceFactory = Callable[..., dict[str, Any]]


def trace_row(trace_id: str, **columns: Any) -> TraceRow:
    """A stored row of a management trace for store-level tests; keyword arguments override columns."""
    values: dict[str, Any] = {
        "project_id": "p1",
        "trace_id": trace_id,
        "kind": "system",
        "time": 1_700_000_000_000,
        "record_time": 1_700_000_000_000,
        "trace_name": "login",
        "trace_rating": "normal",
        "trace_type": "ConsoleAction",
        "service_type": "IAM",
        "resource_type": None,
        "resource_id": None,
        "resource_name": None,
        "user_name": "alice",
        "access_key_id": None,
        "tracker_name": "system",
        "enterprise_project_id": None,
        "body": orjson.dumps({"trace_id": trace_id}),
    }
    values.update(columns)
    return TraceRow(**values)


def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file in ``tmp_path``, or a fresh PostgreSQL database, as the fixture's param says."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return str(request.getfixturevalue("postgres_url"))


@dataclass
class Api:
    """An in-process app with its lifespan running, and a client signed as the bootstrap admin."""

    app: FastAPI
    client: httpx.AsyncClient
    creds: BootstrapCredentials
    settings: Settings

    @property
    def project(self) -> str:
        return self.creds.project_id

    async def put(self, traces: list[dict[str, Any]]) -> httpx.Response:
        return await self.client.post(f"/v3/{self.project}/traces", json={"traces": traces})

    async def list(self, **params: Any) -> httpx.Response:
        return await self.client.get(f"/v3/{self.project}/traces", params=params)


def signed_client(app: FastAPI, creds: BootstrapCredentials, base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=base_url,
        auth=HmacAuth(creds.access_key, creds.secret_key, project_id=creds.project_id),
    )


@asynccontextmanager
async def in_process_api(settings: Settings) -> AsyncIterator[Api]:
    """The app of ``settings`` with its lifespan running (consumers stopped), and a client signed as its
    bootstrap admin that calls it in process."""
    app = create_app(settings, start_consumers=False)
    async with app.router.lifespan_context(app):
        creds = read_credentials(settings.credentials_path)
        async with signed_client(app, creds, "http://127.0.0.1:8080") as client:
            yield Api(app, client, creds, settings)


def master_box(data_dir: Path) -> SecretBox:
    """The box of the master key a server generated in ``data_dir``, for tests that edit its database."""
    return SecretBox(parse_master_key((data_dir / "master.key").read_text(), source="master.key"))


def sdk_client(client_class: Any, url: str, access_key: str, secret_key: str, project_id: str | None) -> Any:
    """A client of the official Huawei Cloud SDK (``CtsClient``, ``SmnClient``) for the server at ``url``."""
    return (
        client_class.new_builder()
        .with_http_config(HttpConfig.get_default_config())
        .with_credentials(BasicCredentials(access_key, secret_key, project_id))
        .with_endpoint(url)
        .build()
    )


def admin_sdk_client(client_class: Any, server: ServerProcess) -> Any:
    """An SDK client signing as the server's bootstrap admin."""
    creds = server.creds
    return sdk_client(client_class, server.url, creds.access_key, creds.secret_key, creds.project_id)


#: the password of every user :func:`create_member` makes
MEMBER_PASSWORD = "Member-Pass-1"


@dataclass(frozen=True)
class Member:
    """A user whose own group holds some roles, with one access key."""

    user_id: str
    group_id: str
    access_key: str
    secret_key: str


def create_member(
    conn: Connection, box: SecretBox, domain_id: str, name: str, *roles: str, active: bool = True
) -> Member:
    """A user in a group of their own (``{name}-group``) holding ``roles``, with one access key (``active``
    or already disabled); their password is :data:`MEMBER_PASSWORD`."""
    user = users.create_user(conn, domain_id=domain_id, name=name, password=MEMBER_PASSWORD)
    group = groups.create_group(conn, domain_id=domain_id, name=f"{name}-group")
    groups.add_member(conn, domain_id=domain_id, group_id=group.id, user_id=user.id)
    for role in roles:
        groups.grant_role(conn, domain_id=domain_id, group_id=group.id, role=role)
    new = credentials.create_credential(conn, box=box, domain_id=domain_id, user_id=user.id)
    if not active:
        key = new.credential.access_key
        credentials.update_credential(conn, domain_id=domain_id, access_key=key, status="inactive")
    return Member(user.id, group.id, new.credential.access_key, new.secret_key)


#: routes anyone may call: they answer without credentials, so only bad input can make them fail
PUBLIC_ROUTES = frozenset(
    {
        "docs_page",
        "docs_init",
        "health",
        "ready",
        "login",
        "getSigningCert",
        "confirmSubscription",
        "showUnsubscribe",
        "unsubscribe",
    }
)


def error_shape_problem(route: APIRoute, resp: httpx.Response) -> str | None:
    """What is wrong with an error answer, or None: a 4xx, an ``X-Request-Id``, and the body of the
    route's API (CTS and KMS ``error_code``/``error_msg``, SMN ``code``/``message``) carrying the same
    request id."""
    where = f"{route.path} ({route.name}) answered {resp.status_code}: {resp.text[:300]}"
    if not 400 <= resp.status_code < 500:
        return where
    request_id = resp.headers.get("x-request-id", "")
    if not re.fullmatch(r"[0-9a-f]{32}", request_id):
        return f"{where} (X-Request-Id {request_id!r})"
    try:
        body = resp.json()
    except ValueError:
        return f"{where} (not JSON)"
    if not isinstance(body, dict) or body.get("request_id") != request_id:
        return f"{where} (no request_id in the body)"
    code, message = ("code", "message") if isinstance(route, SmnRoute) else ("error_code", "error_msg")
    pattern = r"SMN\.\w+" if isinstance(route, SmnRoute) else r"(CTS|KMS)\.\d{4}"
    if body.get("error_code") == "CTS.0404" and str(body.get("error_msg")).startswith("no such API"):
        return None  # the path no longer names the route (an encoded "/" in a value): the app's own 404
    if (
        not re.fullmatch(pattern, str(body.get(code)))
        or not isinstance(body.get(message), str)
        or not body[message]
    ):
        return f"{where} (not the {code}/{message} shape)"
    return None


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """The app's API routes, including those of included routers: the route table tests walk it."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        else:
            yield from api_routes(getattr(getattr(route, "original_router", None), "routes", ()))
