"""The access log and the log formats: one line per request whose request id is the one the client and
the self-audit trace got; JSON lines; secrets masked."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from pydantic import SecretStr

from cts_helpers import Api
from opencts.config import Settings
from opencts.logs import JsonFormatter, configure


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "opencts.access"]


async def test_one_access_line_per_request(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="opencts.access")
    resp = await api.client.post(
        f"/v2/{api.project}/notifications/topics", json={"name": "ops-topic", "display_name": "ops"}
    )
    assert resp.status_code == 200, resp.text
    rid = resp.headers["x-request-id"]
    (record,) = access_records(caplog)
    fields = record.fields  # type: ignore[attr-defined]
    assert fields["request_id"] == rid
    assert fields["principal"] == f"{api.creds.domain_name}/{api.creds.user_name}"
    assert fields["route"] == "/v2/{project_id}/notifications/topics"
    assert fields["route_name"] == "createTopic"
    assert fields["status"] == 200
    assert fields["method"] == "POST"
    assert fields["duration_ms"] >= 0
    line = JsonFormatter().format(record)
    assert orjson.loads(line)["request_id"] == rid
    for secret in (api.creds.secret_key, api.creds.password):
        assert secret not in line and secret not in record.getMessage()

    # the self-audit trace of the call carries the same request id
    listed = await api.list(trace_name="createTopic")
    (trace,) = listed.json()["traces"]
    assert trace["request_id"] == rid

    caplog.clear()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://t") as raw:
        anonymous = await raw.get(f"/v3/{api.project}/traces")
    assert anonymous.status_code == 401
    (record,) = access_records(caplog)
    fields = record.fields  # type: ignore[attr-defined]
    assert fields["status"] == anonymous.status_code
    assert fields["request_id"] == anonymous.headers["x-request-id"]
    assert fields["principal"] is None


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, its handlers and level put back after the test reconfigures it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_lines_mask_secrets(tmp_path: Path, root_logger: logging.Logger) -> None:
    token = "scrape-token-that-must-not-leak"
    settings = Settings(
        data_dir=tmp_path, log_format="json", log_level="WARNING", metrics_token=SecretStr(token)
    )
    configure(settings)
    stream = io.StringIO()
    handler = root_logger.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    log = logging.getLogger("opencts.test")
    log.info("not shown at warning")
    log.warning("sent %s to the scraper", token, extra={"fields": {"route": "/metrics"}})
    try:
        raise ValueError(f"bad token {token}")
    except ValueError:
        log.exception("failed")
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["level"] for line in lines] == ["warning", "error"]
    assert lines[0]["message"] == "sent *** to the scraper"
    assert lines[0]["route"] == "/metrics"
    assert lines[0]["logger"] == "opencts.test"
    assert "ValueError" in lines[1]["exception"]
    assert token not in stream.getvalue()


def test_text_format_is_the_default(tmp_path: Path, root_logger: logging.Logger) -> None:
    configure(Settings(data_dir=tmp_path))
    stream = io.StringIO()
    handler = root_logger.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    logging.getLogger("opencts.test").info("hello")
    assert stream.getvalue().rstrip().endswith("INFO opencts.test: hello")
    assert root_logger.level == logging.INFO
