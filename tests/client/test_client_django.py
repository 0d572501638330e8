"""The Django middleware inside a real Django project, recording into a real OpenCTS over HTTP."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import django
import pytest
from django.conf import settings
from django.http import HttpResponse
from django.test import Client as DjangoClient
from django.urls import path

from client_helpers import client_settings, stored, traces
from opencts.client import Client, Resource
from opencts.client.django import set_client
from opencts.testing.server import ServerProcess

pytestmark = pytest.mark.slow


def pay(request: Any, invoice: str) -> HttpResponse:
    return HttpResponse("paid", status=201)


def invoices(request: Any) -> HttpResponse:
    return HttpResponse("[]")


def invoice_resource(request: Any) -> Resource:
    return Resource(type="invoice", id=request.resolver_match.kwargs.get("invoice"))


def _configure() -> None:
    if settings.configured:
        return
    urls = types.ModuleType("opencts_client_test_urls")
    urls.urlpatterns = [  # type: ignore[attr-defined]
        path("invoices/<invoice>/pay", pay, name="payInvoice"),
        path("invoices", invoices),
    ]
    sys.modules[urls.__name__] = urls
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["testserver"],
        ROOT_URLCONF=urls.__name__,
        MIDDLEWARE=["opencts.client.django.OpenCTSMiddleware"],
        OPENCTS_RESOURCE=f"{__name__}.invoice_resource",
        INSTALLED_APPS=[],
        DATABASES={},
    )
    django.setup()


def test_django_project_records_state_changing_requests(live_server: ServerProcess, tmp_path: Path) -> None:
    _configure()
    config = client_settings(live_server, tmp_path / "spool")
    with Client(config) as client:
        set_client(client)
        web = DjangoClient(REMOTE_ADDR="203.0.113.5")
        for i in range(3):
            assert web.post(f"/invoices/i{i}/pay", HTTP_X_REQUEST_ID=f"pay-{i}").status_code == 201
        assert web.get("/invoices").status_code == 200
        assert client.flush(10)
    assert stored(live_server, config.service_type) == 3
    trace = traces(live_server, config.service_type, limit=1)[0]
    assert trace["trace_name"] == "payInvoice" and trace["resource_type"] == "invoice"
    assert trace["resource_id"].startswith("i") and trace["source_ip"] == "203.0.113.5"
    assert trace["request_id"].startswith("pay-") and "user" not in trace
