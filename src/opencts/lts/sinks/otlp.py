"""OTLP/HTTP logs: ``ExportLogsServiceRequest`` protobuf messages (``opentelemetry-proto``) POSTed to
the sink's endpoint (a Collector's ``http://host:4318/v1/logs``).

Each record is one ``LogRecord``: ``time_unix_nano`` the trace's time, ``observed_time_unix_nano`` when LTS
recorded it, severity from the rating (normal: INFO, warning: WARN, incident: ERROR), ``body`` the trace as
JSON, and the trace's fields as attributes, under OpenTelemetry semantic-convention names where one exists
(:data:`SEMCONV`) and ``cts.*`` otherwise. The resource says who sent it (``service.name`` ``opencts``,
``cloud.account.id`` the project). A 2xx is delivered; any other answer is retried with backoff.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, SeverityNumber

from opencts.lts.sinks.batch import Batch, Record
from opencts.lts.sinks.ndjson import client_for, post

CONTENT_TYPE = "application/x-protobuf"
SCOPE = "opencts.lts.sinks"
SEVERITY: dict[str, tuple[int, str]] = {
    "normal": (SeverityNumber.SEVERITY_NUMBER_INFO, "INFO"),
    "warning": (SeverityNumber.SEVERITY_NUMBER_WARN, "WARN"),
    "incident": (SeverityNumber.SEVERITY_NUMBER_ERROR, "ERROR"),
}


def _user(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda t: (t.get("user") or {}).get(key) if isinstance(t.get("user"), dict) else None


def _domain(t: dict[str, Any]) -> Any:
    user = t.get("user")
    domain = user.get("domain") if isinstance(user, dict) else None
    return domain.get("name") if isinstance(domain, dict) else None


#: attribute name -> how to read it from a trace: semantic-convention names where one fits
SEMCONV: dict[str, Callable[[dict[str, Any]], Any]] = {
    "log.record.uid": lambda t: t.get("trace_id"),
    "event.name": lambda t: t.get("trace_name") and f"cts.{t.get('service_type')}.{t.get('trace_name')}",
    "user.id": _user("id"),
    "user.name": lambda t: _user("name")(t) or _user("user_name")(t),
    "client.address": lambda t: t.get("source_ip"),
    "http.response.status_code": lambda t: int(t["code"]) if str(t.get("code", "")).isdigit() else None,
    "url.full": lambda t: t.get("resource_url"),
    "server.address": lambda t: t.get("endpoint"),
    "cloud.resource_id": lambda t: t.get("resource_id"),
}
#: trace fields without a semantic convention, as ``cts.<field>``
CTS_FIELDS = (
    "trace_id",
    "trace_name",
    "trace_rating",
    "trace_type",
    "service_type",
    "resource_type",
    "resource_name",
    "tracker_name",
    "api_version",
    "request_id",
    "code",
)


def _set(target: AnyValue, value: Any) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    else:
        target.string_value = str(value)


def attribute_values(trace: dict[str, Any]) -> list[tuple[str, Any]]:
    """The (name, value) attributes of a trace, the empty ones left out."""
    found = [(name, read(trace)) for name, read in SEMCONV.items()]
    found += [(f"cts.{f}", trace.get(f)) for f in CTS_FIELDS]
    found.append(("cts.user.domain.name", _domain(trace)))
    return [(k, v) for k, v in found if v is not None and v != ""]


def fill_record(target: LogRecord, record: Record) -> None:
    """Fill a ``LogRecord`` in place: with upb, building submessages apart and assigning them copies each
    one, which costs several times the fill."""
    number, text = SEVERITY.get(str(record.trace.get("trace_rating")), SEVERITY["normal"])
    target.time_unix_nano = record.time * 1_000_000
    target.observed_time_unix_nano = record.record_time * 1_000_000
    target.severity_number = number  # type: ignore[assignment]
    target.severity_text = text
    target.body.string_value = record.content
    add = target.attributes.add
    for key, value in attribute_values(record.trace):
        _set(add(key=key).value, value)


def request(batch: Batch) -> ExportLogsServiceRequest:
    sink = batch.sink
    out = ExportLogsServiceRequest()
    resource_logs = out.resource_logs.add()
    for key, value in (
        ("service.name", "opencts"),
        ("cloud.account.id", sink.project_id),
        ("cts.log_group_id", sink.group_id),
        ("cts.log_stream_id", sink.stream_id),
    ):
        resource_logs.resource.attributes.add(key=key).value.string_value = value
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = SCOPE
    add = scope_logs.log_records.add
    for r in batch.records:
        fill_record(add(), r)
    return out


class OtlpSender:
    def __init__(self, *, timeout: float) -> None:
        self.timeout = timeout
        self._client: Any = None

    async def send(self, batch: Batch) -> None:
        if self._client is None:
            self._client = client_for(batch, self.timeout)
        payload = request(batch).SerializeToString()
        headers = {"Content-Type": CONTENT_TYPE, "X-OpenCTS-Message-Id": batch.batch_id}
        await post(self._client, batch, payload, headers)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
