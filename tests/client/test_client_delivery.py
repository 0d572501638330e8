"""The sync client against a real OpenCTS: batches delivered once, through retries, outages and restarts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from client_helpers import client_settings, stored, traces, wait_stored
from opencts.client import Client, Resource
from opencts.testing.ports import free_port
from opencts.testing.server import ServerProcess
from opencts.testing.waiting import wait_for

pytestmark = pytest.mark.slow


def test_traces_arrive_in_batches_once(live_server: ServerProcess, tmp_path: Path) -> None:
    settings = client_settings(live_server, tmp_path / "spool", batch_max_traces=500)
    with Client(settings) as client:
        for i in range(1_200):
            client.record(
                "createThing",
                user="alice",
                resource=Resource(type="thing", id=f"t{i}", name=f"thing {i}"),
                status=201,
                source_ip="10.0.0.7",
                request_id=f"req-{i}",
            )
        assert client.flush(30)
        stats = client.stats()
    assert stats.recorded == stats.accepted == 1_200
    # 500 a batch: three, or more when the flusher sealed while traces were still being recorded
    assert stats.batches_sent >= 3 and stats.dropped == 0 and stats.pending_batches == 0
    assert stored(live_server, settings.service_type) == 1_200
    trace = traces(live_server, settings.service_type, limit=1)[0]
    assert trace["trace_name"] == "createThing" and trace["user"]["name"] == "alice"
    assert trace["resource_type"] == "thing" and trace["source_ip"] == "10.0.0.7"
    assert trace["code"] == "201" and trace["trace_rating"] == "normal"
    assert not list((tmp_path / "spool").iterdir())


def test_a_lone_trace_is_sent_after_the_flush_interval(live_server: ServerProcess, tmp_path: Path) -> None:
    """Far fewer traces than a batch, and nobody calls flush: the flusher seals them on its interval."""
    settings = client_settings(live_server, tmp_path / "spool", flush_interval=0.2)
    with Client(settings) as client:
        client.record("createThing", user="alice", status=201)
        wait_for(lambda: client.stats().accepted == 1, 10, "the interval's batch")
        assert client.stats().batches_sent == 1
    assert stored(live_server, settings.service_type) == 1


def test_a_batch_sent_again_adds_nothing(live_server: ServerProcess, tmp_path: Path) -> None:
    """A batch spooled while OpenCTS cannot be reached is sent by the next process; the same file sent a
    second time (a crash between sending and deleting) only counts duplicates."""
    spool = tmp_path / "spool"
    nowhere = client_settings(live_server, spool, endpoint=f"http://127.0.0.1:{free_port()}")
    with Client(nowhere) as client:
        ids = {client.record("deleteThing", user="bob", status=204) for _ in range(10)}
        assert not client.flush(0.3)
        assert client.stats().send_failures >= 1
    assert None not in ids
    (batch,) = spool.iterdir()
    saved = tmp_path / "saved.batch"
    shutil.copy(batch, saved)

    settings = nowhere.model_copy(update={"endpoint": live_server.url})
    with Client(settings) as client:  # a restart: nothing recorded, the spool sent
        assert client.flush(10)
        assert client.stats().accepted == 10
    shutil.copy(saved, spool / batch.name)
    with Client(settings) as client:
        assert client.flush(10)
        stats = client.stats()
    assert (stats.accepted, stats.duplicates) == (0, 10)
    assert stored(live_server, settings.service_type) == 10
    assert {t["trace_id"] for t in traces(live_server, settings.service_type)} == ids


def test_opencts_down_then_up(tmp_path: Path) -> None:
    """Recorded while OpenCTS is stopped: every trace is delivered once it is back, none twice."""
    server = ServerProcess(tmp_path / "data").start()
    try:
        settings = client_settings(server, tmp_path / "spool", batch_max_traces=100)
        server.stop()
        with Client(settings) as client:
            for _ in range(250):
                client.record("updateThing", user="carol", status=200)
            assert not client.flush(0.5)
            down = client.stats()
            assert down.pending_batches >= 3 and down.send_failures >= 1 and down.accepted == 0
            for _ in range(250):
                client.record("updateThing", user="carol", status=500)
            server.start()
            assert client.flush(30)
            up = client.stats()
        assert up.accepted == 500 and up.dropped == 0 and up.pending_batches == 0
        wait_stored(server, settings.service_type, 500)
        assert stored(server, settings.service_type, trace_rating="incident") == 250
    finally:
        server.stop()


def test_bounds_drop_new_traces_and_count_them(live_server: ServerProcess, tmp_path: Path) -> None:
    nowhere = client_settings(
        live_server,
        tmp_path / "spool",
        endpoint=f"http://127.0.0.1:{free_port()}",
        buffer_max_traces=50,
        spool_max_bytes=20_000,
        flush_interval=3600,
    )
    with Client(nowhere) as client:
        kept = [client.record("createThing", status=201) for _ in range(60)]
        assert kept.count(None) == 10 and client.stats().dropped_buffer_full == 10
        client.flush(0.2)
        for _ in range(4):
            for _ in range(50):
                client.record("createThing", status=201, message="x" * 100)
            client.flush(0.2)
        stats = client.stats()
    assert stats.dropped_outbox_full > 0
    assert stats.pending_bytes <= 20_000
    assert stats.recorded == 250 and stats.dropped_buffer_full == 10
