"""``/metrics``: who may scrape, what the page holds (read back with prometheus-client's own parser), and
that the figures move when traces flow; the separate listener; multiprocess sums."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from cts_helpers import Api, TraceFactory, create_member, in_process_api, signed_client
from opencts.config import Settings
from opencts.consumers import ConsumerRunner
from opencts.iam.bootstrap import BootstrapCredentials
from opencts.iam.permissions import CTS_READ_ONLY
from opencts.metrics.exposition import render, scrape_registry
from opencts.metrics.instruments import INGEST_TRACES, set_enabled
from opencts.testing.ports import free_port
from opencts.trackers.catalogue import CatalogueConsumer

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of the page by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(api: Api) -> Samples:
    resp = await api.client.get("/metrics")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(resp.text)


async def test_metrics_move_under_load(api: Api, make_trace: TraceFactory) -> None:
    before = await scrape(api)
    for _ in range(3):
        good = [make_trace() for _ in range(40)]
        bad: list[Any] = [make_trace(trace_name="x" * 300), make_trace(time=1_600_000_000_000), "x"]
        body = {"traces": [*good, *bad, good[0]]}
        resp = await api.client.post(f"/v3/{api.project}/traces", json=body)
        assert resp.status_code == 200
    assert (await api.list(user="alice")).status_code == 200
    assert (await api.list()).status_code == 200
    after = await scrape(api)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("opencts_ingest_traces_total", outcome="accepted") == 120
    assert moved("opencts_ingest_traces_total", outcome="duplicate") == 3
    assert moved("opencts_ingest_traces_total", outcome="rejected") == 9
    assert moved("opencts_ingest_rejections_total", reason="too_old") == 3
    assert moved("opencts_ingest_rejections_total", reason="not_json") == 3
    assert moved("opencts_ingest_rejections_total", reason="invalid") == 3
    assert moved("opencts_ingest_batch_traces_count") == 3
    assert moved("opencts_ingest_batch_traces_sum") == 3 * 44
    assert moved("opencts_commit_seconds_count") >= 1
    assert moved("opencts_commit_rows_sum") == 120
    assert moved("opencts_list_traces_seconds_count", filters="user_name") == 1
    assert moved("opencts_list_traces_seconds_count", filters="none") == 1
    assert moved("opencts_http_requests_total", route="putTraces", status="200") == 3
    assert ("opencts_write_queue_batches", ()) in after
    # the deployment's figures, read from the database at scrape time
    head = value(after, "opencts_trace_log_head_seq")
    assert head >= 120
    assert value(after, "opencts_consumer_lag_traces", consumer="transfer") == head
    assert value(after, "opencts_consumer_lag_seconds", consumer="transfer") > 0
    assert value(after, "opencts_database_size_bytes") > 0

    services = api.app.state.services
    await ConsumerRunner(services.db, CatalogueConsumer(services.db)).drain()
    drained = await scrape(api)
    assert value(drained, "opencts_consumer_cursor", consumer="catalogue") == head
    assert value(drained, "opencts_consumer_lag_traces", consumer="catalogue") == 0
    assert value(drained, "opencts_consumer_lag_seconds", consumer="catalogue") == 0


async def test_who_may_scrape(tmp_path: Path) -> None:
    token = SecretStr("scrape-me-123")
    settings = Settings(data_dir=tmp_path / "data", ingest_workers=0, metrics_token=token)
    async with in_process_api(settings) as api:
        services = api.app.state.services
        reader = await services.db.write(
            lambda conn: create_member(conn, services.box, api.creds.domain_id, "reader", CTS_READ_ONLY)
        )
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://t") as raw:
            anonymous = await raw.get("/metrics")
            assert anonymous.status_code == 401
            assert anonymous.json()["error_code"] == "CTS.0401"
            assert anonymous.headers["x-request-id"] == anonymous.json()["request_id"]
            wrong = await raw.get("/metrics", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            scraped = await raw.get("/metrics", headers={"Authorization": "Bearer scrape-me-123"})
            assert scraped.status_code == 200
            assert ("opencts_trace_log_head_seq", ()) in parse(scraped.text)
        assert (await api.client.get("/metrics")).status_code == 200  # the signed administrator
        as_reader = BootstrapCredentials(
            **{**api.creds.__dict__, "access_key": reader.access_key, "secret_key": reader.secret_key}
        )
        async with signed_client(api.app, as_reader, "http://t") as client:
            denied = await client.get("/metrics")
        assert denied.status_code == 403
        assert denied.json()["error_code"] == "CTS.0403"


async def test_metrics_can_be_turned_off(tmp_path: Path, make_trace: TraceFactory) -> None:
    """Off, there is no /metrics and the instruments do nothing (they cost nothing on the ingest path)."""
    accepted = {"outcome": "accepted"}
    before = REGISTRY.get_sample_value("opencts_ingest_traces_total", accepted) or 0.0
    settings = Settings(data_dir=tmp_path / "data", ingest_workers=0, metrics_enabled=False)
    async with in_process_api(settings) as api:
        resp = await api.client.get("/metrics")
        assert (await api.put([make_trace()])).status_code == 200
    assert resp.status_code == 404
    assert resp.json()["error_code"] == "CTS.0404"
    assert REGISTRY.get_sample_value("opencts_ingest_traces_total", accepted) == before
    set_enabled(True)  # as the next app with metrics on does at its start
    INGEST_TRACES.labels("accepted").inc()
    assert REGISTRY.get_sample_value("opencts_ingest_traces_total", accepted) == before + 1


async def test_separate_listener(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(
        data_dir=tmp_path / "data",
        ingest_workers=0,
        metrics_address=f"127.0.0.1:{port}",
        metrics_token=SecretStr("scrape-me-456"),
    )
    async with in_process_api(settings) as api:
        assert (await api.client.get("/metrics")).status_code == 404  # not on BIND any more
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as scraper:
            assert (await scraper.get("/metrics")).status_code == 401
            resp = await scraper.get("/metrics", headers={"Authorization": "Bearer scrape-me-456"})
            assert resp.status_code == 200
            samples = parse(resp.text)
            assert value(samples, "opencts_trace_log_head_seq") >= 0
            assert ("opencts_database_size_bytes", ()) in samples
            assert (await scraper.get("/other")).status_code == 404
    with pytest.raises(httpx.ConnectError):  # closed with the app
        httpx.get(f"http://127.0.0.1:{port}/metrics")


async def test_separate_listener_on_ipv6(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(data_dir=tmp_path / "data", ingest_workers=0, metrics_address=f"[::1]:{port}")
    async with in_process_api(settings):
        async with httpx.AsyncClient(base_url=f"http://[::1]:{port}") as scraper:
            resp = await scraper.get("/metrics")
            assert resp.status_code == 200 and "opencts_trace_log_head_seq" in resp.text


_WORKER = """
from opencts.metrics import instruments as m
m.INGEST_TRACES.labels("accepted").inc({n})
m.COMMIT_SECONDS.observe(0.01)
"""


async def test_worker_processes_are_summed(api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With PROMETHEUS_MULTIPROC_DIR, whichever process answers a scrape reports every process's sums."""
    shared = tmp_path / "prom"
    shared.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared), "PATH": "/usr/bin:/bin"}
    for n in (5, 7):
        subprocess.run([sys.executable, "-c", _WORKER.format(n=n)], env=env, check=True, timeout=60)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
    samples = parse(render(scrape_registry(api.app.state.services.db)).decode())
    assert value(samples, "opencts_ingest_traces_total", outcome="accepted") == 12
    assert value(samples, "opencts_commit_seconds_count") == 2
    assert ("opencts_trace_log_head_seq", ()) in samples  # the database's figures ride along


async def test_the_dashboard_uses_metrics_that_exist(api: Api) -> None:
    resp = await api.client.get("/metrics")
    families = {family.name for family in text_string_to_metric_families(resp.text)}
    dashboard = orjson.loads((Path(__file__).parents[2] / "docs" / "grafana-opencts.json").read_bytes())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {
        re.sub(r"_(total|bucket|sum|count)$", "", name)
        for e in exprs
        for name in re.findall(r"opencts_\w+", e)
    }
    assert used and used <= families, used - families
