"""Forwarding headers are believed only from the proxies the operator lists (OPENCTS_TRUSTED_PROXIES).

uvicorn believes ``X-Forwarded-For`` from 127.0.0.1 unless told otherwise, so any local client could
write any ``source_ip`` into the audit trail and rotate it past the per-address login lockout. These tests
run the real ``opencts serve`` and attack it from loopback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from opencts.client.signing import HmacAuth
from opencts.config import Settings
from opencts.testing.server import ServerProcess, start_server

PER_IP = 3  # failed logins from one address before it is locked out
SPOOFED = ["203.0.113.7", "198.51.100.23", "192.0.2.99", "203.0.113.250"]


def login(server: ServerProcess, user: str, password: str, headers: dict[str, str]) -> httpx.Response:
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": user, "password": password, "domain": {"name": server.creds.domain_name}}
                },
            },
            "scope": {"project": {"id": server.creds.project_id}},
        }
    }
    return httpx.post(f"{server.url}/v3/auth/tokens", json=body, headers=headers, timeout=30)


def login_sources(server: ServerProcess) -> list[str]:
    creds = server.creds
    auth = HmacAuth(creds.access_key, creds.secret_key, project_id=creds.project_id)
    resp = httpx.get(
        f"{server.url}/v3/{creds.project_id}/traces",
        params={"trace_name": "login", "limit": 200},
        auth=auth,
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    return [t.get("source_ip", "") for t in resp.json()["traces"]]


def serve(tmp_path: Path, **env: str) -> Iterator[ServerProcess]:
    server = start_server(tmp_path / "data", {"OPENCTS_LOGIN_MAX_FAILURES_PER_IP": str(PER_IP), **env})
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def default_server(tmp_path: Path) -> Iterator[ServerProcess]:
    yield from serve(tmp_path)


@pytest.fixture
def behind_proxy(tmp_path: Path) -> Iterator[ServerProcess]:
    yield from serve(tmp_path, OPENCTS_TRUSTED_PROXIES="127.0.0.0/8, ::1")


def spoofing_headers(address: str) -> dict[str, Any]:
    return {
        "X-Forwarded-For": address,
        "Forwarded": f"for={address}",
        "X-Real-IP": address,
        "X-Forwarded-Proto": "https",
    }


def test_a_loopback_client_cannot_set_its_address_nor_rotate_past_the_lockout(
    default_server: ServerProcess,
) -> None:
    for n, address in enumerate(SPOOFED[:PER_IP]):
        resp = login(default_server, f"nobody{n}", "wrong", spoofing_headers(address))
        assert resp.status_code == 401, resp.text
    # a fresh "address" and the right password: still this connection's address, so still locked
    resp = login(
        default_server,
        default_server.creds.user_name,
        default_server.creds.password,
        spoofing_headers(SPOOFED[-1]),
    )
    assert resp.status_code == 429, resp.text
    assert resp.json()["error_code"] == "CTS.0430"
    sources = login_sources(default_server)
    assert sources and set(sources) == {"127.0.0.1"}


def test_a_listed_proxy_is_believed_for_the_client_it_forwards(behind_proxy: ServerProcess) -> None:
    for n, address in enumerate(SPOOFED[:PER_IP]):
        resp = login(behind_proxy, f"nobody{n}", "wrong", {"X-Forwarded-For": address})
        assert resp.status_code == 401, resp.text
    # each client behind the proxy has its own count: the next one logs in
    creds = behind_proxy.creds
    resp = login(behind_proxy, creds.user_name, creds.password, {"X-Forwarded-For": SPOOFED[-1]})
    assert resp.status_code == 201, resp.text
    assert sorted(login_sources(behind_proxy)) == sorted(SPOOFED)


def test_a_listed_proxy_passes_on_only_the_address_it_saw(behind_proxy: ServerProcess) -> None:
    """A client behind the proxy who sends its own X-Forwarded-For gets the proxy's appended entry."""
    resp = login(behind_proxy, "nobody", "wrong", {"X-Forwarded-For": "198.51.100.1, 192.0.2.44"})
    assert resp.status_code == 401
    # Forwarded and X-Real-IP are never read, even from a listed proxy
    resp = login(
        behind_proxy, "nobody", "wrong", {"Forwarded": "for=198.51.100.2", "X-Real-IP": "198.51.100.3"}
    )
    assert resp.status_code == 401
    assert sorted(login_sources(behind_proxy)) == ["127.0.0.1", "192.0.2.44"]


@pytest.mark.parametrize("value", ["localhost", "10.0.0.0/33", "10.0.0.1,,bad"])
def test_trusted_proxies_must_be_addresses_or_networks(value: str) -> None:
    with pytest.raises(ValidationError, match="trusted_proxies"):
        Settings(trusted_proxies=value)


def test_trusted_proxies_are_normalised_for_the_middleware() -> None:
    settings = Settings(trusted_proxies=" 10.0.0.7 , 192.168.1.9/24,::1")
    assert settings.trusted_proxy_list == ["10.0.0.7/32", "192.168.1.0/24", "::1/128"]
