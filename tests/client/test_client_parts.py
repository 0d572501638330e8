"""The client's parts without a server: answers classified, backoff, the spool shared by two senders,
settings from the environment held to the server's limits."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from opencts.client import recording, settings
from opencts.client.base import BaseClient
from opencts.client.delivery import Backoff, classify, parse_retry_after
from opencts.client.outbox import Batch
from opencts.client.settings import ClientSettings
from opencts.client.spool import Spool
from opencts.traces import ingest, model


def test_limits_and_grammar_match_the_server() -> None:
    assert settings.MAX_BATCH_TRACES == ingest.MAX_BATCH_TRACES
    assert settings.MAX_BATCH_BYTES == ingest.MAX_BATCH_BYTES
    assert settings.SERVICE_TYPE_PATTERN == model.SERVICE_TYPE_PATTERN
    assert recording.TRACE_NAME_PATTERN == model.TRACE_NAME_PATTERN


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENCTS_CLIENT_PROJECT_ID", "p1")
    monkeypatch.setenv("OPENCTS_CLIENT_SPOOL_DIR", str(tmp_path))
    monkeypatch.setenv("OPENCTS_CLIENT_BATCH_MAX_TRACES", "42")
    s = ClientSettings()
    assert (s.project_id, s.resolved_spool_dir(), s.batch_max_traces) == ("p1", tmp_path, 42)
    assert "s3cr3t-value" not in repr(ClientSettings(secret_key="s3cr3t-value"))


@pytest.mark.parametrize(
    ("status", "headers", "body", "kind", "retry_after"),
    [
        (200, {}, b'{"accepted":1,"duplicates":1,"rejected":0,"results":[]}', "done", None),
        (400, {}, b'{"results":[{"index":0,"status":"rejected","reason":"bad"}]}', "done", None),
        (429, {"retry-after": "7"}, b"{}", "retry", 7.0),
        (503, {"retry-after": "99999"}, b"", "retry", 300.0),
        (500, {"retry-after": "7"}, b"", "retry", None),
        (401, {}, b"{}", "retry", None),
        (413, {}, b"{}", "done", None),
        (200, {}, b"<html>proxy</html>", "retry", None),
    ],
)
def test_answers_classified(
    status: int, headers: dict[str, str], body: bytes, kind: str, retry_after: float | None
) -> None:
    outcome = classify(status, headers, body, 2)
    assert (outcome.kind, outcome.retry_after) == (kind, retry_after)
    if status == 413:
        assert outcome.rejected == 2


def test_retry_after_as_a_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None


def test_backoff_grows_to_its_ceiling_and_resets() -> None:
    backoff = Backoff(0.5, 4.0)
    delays = [backoff.next_delay() for _ in range(10)]
    assert all(0.25 <= d <= 4.0 for d in delays)
    assert backoff.next_delay(retry_after=9.0) == 9.0
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_two_senders_never_hold_the_same_batch(tmp_path: Path) -> None:
    first, second = Spool(tmp_path, max_bytes=10_000), Spool(tmp_path, max_bytes=10_000)
    assert first.put(Batch.seal("p1", [b'{"trace_name":"a"}']))
    (key,) = second.waiting()
    claim = first.claim(key)
    assert claim is not None and second.claim(key) is None
    first.done(claim)
    assert second.claim(key) is None and second.waiting() == []


def test_unreadable_batch_is_set_aside(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10_000)
    (tmp_path / "0001-x.batch").write_bytes(b"garbage")
    assert spool.claim("0001-x.batch") is None
    assert (tmp_path / "0001-x.corrupt").exists() and spool.waiting() == []


def test_full_spool_refuses_new_batches(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=360)
    batch = Batch.seal("p1", [b'{"trace_name":"' + b"a" * 60 + b'"}'])
    assert spool.put(batch) and spool.put(batch.__class__("b2", "p1", 1, batch.body))
    assert not spool.put(batch.__class__("b3", "p1", 1, batch.body))
    assert spool.pending()[0] == 2


def test_batches_are_sealed_by_count_and_by_size() -> None:
    """Sealing cuts a batch at ``batch_max_traces`` traces or before ``batch_max_bytes``, whichever
    comes first; every body stays within its limit and no trace is lost or repeated."""
    by_count = BaseClient(
        ClientSettings(project_id="p1", access_key="ak", secret_key="sk", spool=False, batch_max_traces=3)
    )
    ids = [by_count.record("createThing", status=201) for _ in range(7)]
    assert by_count.seal() == 3
    batches = [by_count.outbox.claim(key) for key in by_count.outbox.waiting()]
    assert [c.batch.count for c in batches if c is not None] == [3, 3, 1]

    by_size = BaseClient(
        ClientSettings(project_id="p1", access_key="ak", secret_key="sk", spool=False, batch_max_bytes=4096)
    )
    for _ in range(20):
        by_size.record("createThing", status=201, message="x" * 900)
    assert by_size.seal() > 1
    sealed = [c.batch for c in map(by_size.outbox.claim, by_size.outbox.waiting()) if c is not None]
    assert all(len(b.body) <= 4096 for b in sealed) and sum(b.count for b in sealed) == 20
    seen = [t["trace_id"] for b in sealed for t in orjson.loads(b.body)["traces"]]
    assert len(set(seen)) == 20 and None not in ids
