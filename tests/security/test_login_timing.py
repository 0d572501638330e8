"""Login timing must not tell which user names exist.

A wrong password costs an Argon2 verification; an unknown user name must cost the same, or a stopwatch is a
user-name oracle. Measured over the real app: the median of several logins of each kind, interleaved so a
busy machine slows both alike, within a generous ratio (an unknown name skipping Argon2 answers about ten
times faster than a known one).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opencts.api.app import create_app
from opencts.api.deps import Services
from opencts.config import Settings
from opencts.iam import users
from opencts.iam.bootstrap import read_credentials

ROUNDS = 7


def login(name: str, password: str) -> dict[str, Any]:
    user = {"name": name, "password": password, "domain": {"name": "opencts"}}
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": user}}}}


@pytest.fixture
async def bare(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a lockout far above the number of attempts made here: a locked name answers at once."""
    settings = Settings(
        data_dir=tmp_path / "data",
        bind="127.0.0.1:8080",
        ingest_workers=0,
        login_max_failures=1000,
        login_max_failures_per_ip=1000,
    )
    app = create_app(settings, start_consumers=False)
    async with app.router.lifespan_context(app):
        services: Services = app.state.services
        domain_id = read_credentials(settings.credentials_path).domain_id
        await services.db.write(
            lambda conn: users.create_user(conn, domain_id=domain_id, name="known", password="Known-Pass-1")
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:
            yield client


async def timed(client: httpx.AsyncClient, name: str) -> float:
    started = time.perf_counter()
    resp = await client.post("/v3/auth/tokens", json=login(name, "Wrong-Pass-1"))
    elapsed = time.perf_counter() - started
    assert resp.status_code == 401, resp.text
    return elapsed


async def test_an_unknown_user_name_costs_as_much_as_a_wrong_password(bare: httpx.AsyncClient) -> None:
    await timed(bare, "known")  # warm-up: first requests pay for imports and caches
    await timed(bare, "nobody-0")
    known: list[float] = []
    unknown: list[float] = []
    for n in range(1, ROUNDS + 1):
        known.append(await timed(bare, "known"))
        unknown.append(await timed(bare, f"nobody-{n}"))
    known_ms, unknown_ms = statistics.median(known) * 1000, statistics.median(unknown) * 1000
    assert unknown_ms >= 0.5 * known_ms, f"unknown name {unknown_ms:.1f} ms, wrong password {known_ms:.1f} ms"
    assert known_ms >= 0.5 * unknown_ms, f"unknown name {unknown_ms:.1f} ms, wrong password {known_ms:.1f} ms"
