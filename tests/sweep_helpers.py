"""What the sweeps of hostile input share: filling route templates, judging answers, the resources the
routes name (tests/security/test_bad_input_sweep.py, tests/console/test_console_sweep.py)."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from cts_helpers import Api, error_shape_problem, in_process_api
from opencts.config import Settings

#: the backends a sweep runs on: PostgreSQL refuses what SQLite stores (NUL, integers past 64 bits), so
#: hostile input must be met before it reaches either
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@asynccontextmanager
async def backend_api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    """The in-process app on the backend ``request.param`` names."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    settings = Settings(data_dir=tmp_path / "data", bind="127.0.0.1:8080", ingest_workers=0, database_url=url)
    async with in_process_api(settings) as live:
        yield live


def fill(template: str, values: dict[str, str], hostile: tuple[str, str] | None = None) -> str:
    def one(match: re.Match[str]) -> str:
        name = match[1]
        if hostile is not None and name == hostile[0]:
            return hostile[1]
        return values.get(name, "nope")

    return re.sub(r"{(\w+)(?::\w+)?}", one, template)


class Findings:
    """What broke the rules, gathered so that one run names every offender."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.requests = 0

    def check(self, resp: httpx.Response, route: APIRoute | None, method: str, path: str, what: str) -> None:
        """Never a 5xx, always a request id; an error of an API route in that API's shape."""
        self.requests += 1
        where = f"{method} {path[:120]} ({what[:80]})"
        if resp.status_code >= 500 or not resp.headers.get("x-request-id"):
            self.problems.append(f"{where}: {resp.status_code} {resp.text[:300]}")
        elif route is not None and resp.status_code >= 400:
            problem = error_shape_problem(route, resp)
            if problem is not None:
                self.problems.append(f"{where}: {problem}")


def inline_code(source: str) -> dict[str, str]:
    return {"file": base64.b64encode(source.encode()).decode()}


async def resources(api: Api, trace: dict[str, Any]) -> dict[str, str]:
    """One of each kind of resource the routes name, made through the API: the sweep's path values."""
    project = api.creds.project_id
    values = {"project_id": project, "domain_id": api.creds.domain_id}
    topic = await api.client.post(
        f"/v2/{project}/notifications/topics", json={"name": "sweep", "display_name": "s"}
    )
    assert topic.status_code == 200, topic.text
    values["topic_urn"] = topic.json()["topic_urn"]
    made = await api.client.post(
        f"/v2/{project}/fgs/functions",
        json={
            "func_name": "sweep",
            "package": "default",
            "runtime": "Python3.10",
            "handler": "index.handler",
            "memory_size": 128,
            "timeout": 3,
            "code_type": "inline",
            "func_code": inline_code("def handler(event, context):\n    return 1\n"),
        },
    )
    assert made.status_code == 200, made.text
    values["function_urn"] = made.json()["func_urn"]
    key = await api.client.post(f"/v1.0/{project}/kms/create-key", json={"key_alias": "sweep"})
    assert key.status_code == 200, key.text
    values["key_id"] = key.json()["key_info"]["key_id"]
    tracker = await api.client.get(f"/v3/{project}/trackers", params={"tracker_name": "system"})
    values["tracker_id"] = tracker.json()["trackers"][0]["id"]
    values["trace_id"] = trace["trace_id"]
    return values
