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
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs, SeverityNumber
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

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


def _value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    return AnyValue(string_value=str(value))


def attributes(trace: dict[str, Any]) -> list[KeyValue]:
    found = [(name, read(trace)) for name, read in SEMCONV.items()]
    found += [(f"cts.{f}", trace.get(f)) for f in CTS_FIELDS]
    found.append(("cts.user.domain.name", _domain(trace)))
    return [KeyValue(key=k, value=_value(v)) for k, v in found if v is not None and v != ""]


def log_record(record: Record) -> LogRecord:
    number, text = SEVERITY.get(str(record.trace.get("trace_rating")), SEVERITY["normal"])
    return LogRecord(
        time_unix_nano=record.time * 1_000_000,
        observed_time_unix_nano=record.record_time * 1_000_000,
        severity_number=number,  # type: ignore[arg-type]
        severity_text=text,
        body=AnyValue(string_value=record.content),
        attributes=attributes(record.trace),
    )


def request(batch: Batch) -> ExportLogsServiceRequest:
    sink = batch.sink
    resource = Resource(
        attributes=[
            KeyValue(key="service.name", value=AnyValue(string_value="opencts")),
            KeyValue(key="cloud.account.id", value=AnyValue(string_value=sink.project_id)),
            KeyValue(key="cts.log_group_id", value=AnyValue(string_value=sink.group_id)),
            KeyValue(key="cts.log_stream_id", value=AnyValue(string_value=sink.stream_id)),
        ]
    )
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=resource,
                scope_logs=[
                    ScopeLogs(
                        scope=InstrumentationScope(name=SCOPE),
                        log_records=[log_record(r) for r in batch.records],
                    )
                ],
            )
        ]
    )


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
