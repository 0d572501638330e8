"""Every console page and form, logged in, with hostile path values, query parameters and form fields:
never a 5xx, always a request id. The pages are found from the app's routes, so a new page is swept too;
path values name real resources (a function, a topic, a notification, a trace, the system tracker) where
they can, so the pages render past their lookups before meeting the hostile parameters."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import BaseRoute, Mount

from console_helpers import csrf_of, logged_in
from cts_helpers import Api, TraceFactory
from sweep_helpers import BACKENDS, Findings, backend_api, fill, resources


@pytest.fixture(params=BACKENDS)
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    async with backend_api(request, tmp_path) as live:
        yield live


SEGMENTS = ["nope", "%00", "x" * 2000, "..%2F..%2Fetc", "'%20OR%201=1--"]
QUERIES: list[dict[str, str]] = [
    {"limit": "-1"},
    {"from": "x", "to": "-5"},
    {"range": "custom", "from": "2026-13-45T99:99", "to": "zz"},
    {"range": "nope"},
    {"next": "garbage!!"},
    {"marker": "%%%"},
    {"trace_id": "\x00"},
    {"search": "x" * 5000},
    {"service_type": "../../x", "trace_rating": "nope", "trace_type": "nope"},
    {"day": "2026-02-30"},
    {"tracker": "x" * 300},
    {"period": "nope"},
    {"project": "nope"},
    {"create": "1", "kind": "nope"},
]


def console_routes(routes: list[BaseRoute]) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(path, methods) of every route under /console, through included routers and mounts."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from console_routes(included.routes)
        elif isinstance(route, Mount):
            yield from console_routes(route.routes)
        else:
            path, methods = getattr(route, "path", ""), getattr(route, "methods", None)
            if path.startswith("/console") and methods:
                yield path, tuple(sorted(set(methods) - {"HEAD"}))


async def test_every_page_and_form_answers_hostile_input_without_a_server_error(
    api: Api, make_trace: TraceFactory
) -> None:
    trace = make_trace()
    assert (await api.client.post(f"/v3/{api.project}/traces", json={"traces": [trace]})).status_code == 200
    values = await resources(api, trace)
    notification = await api.client.post(
        f"/v3/{api.project}/notifications",
        json={"notification_name": "sweep", "operation_type": "complete", "topic_id": values["topic_urn"]},
    )
    assert notification.status_code == 201, notification.text
    values |= {
        "package": "default",
        "name": "sweep",
        "notification_id": notification.json()["notification_id"],
        "kind": "CTS",
    }
    # what deletes a resource or ends the session goes last, so every other page meets the real resources
    pages = sorted(
        set(console_routes(api.app.routes)), key=lambda page: (page[0].endswith(("/delete", "/logout")), page)
    )
    assert len(pages) > 40
    findings = Findings()
    async with logged_in(api.app, api.creds) as client:
        csrf = csrf_of((await client.get("/console/traces")).text)
        for template, methods in pages:
            paths = [fill(template, values)]
            for name in re.findall(r"{(\w+)(?::\w+)?}", template):
                paths += [fill(template, values, (name, segment)) for segment in SEGMENTS]
            for method in methods:
                for path in paths:
                    for query in [{}, *QUERIES] if path == paths[0] else [{}]:
                        if method == "GET":
                            resp = await client.get(path, params=query)
                        else:  # the form's fields are the hostile ones, with a valid CSRF token
                            form: dict[str, Any] = {"csrf_token": csrf, **query}
                            resp = await client.request(method, path, data=form)
                        findings.check(resp, None, method, path, str(query))  # pages: HTML errors
    assert not findings.problems, "\n".join(findings.problems)
    assert findings.requests > 1000
