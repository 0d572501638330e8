"""What a sender gets: a sink as loaded for forwarding, and a batch of its stream's records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class SinkError(Exception):
    """A batch did not reach the receiver; the message is shown as the sink's ``last_error``.

    Messages name the endpoint and what went wrong, never a header value or a key.
    """


@dataclass(frozen=True, slots=True)
class Sink:
    """A sink row with its settings parsed and its secrets opened (in memory only)."""

    sink_id: str
    project_id: str
    group_id: str
    stream_id: str
    name: str
    sink_type: str
    endpoint: str
    settings: dict[str, Any]
    secrets: dict[str, Any] = field(repr=False)
    #: the stored filter config, compiled by the forwarder
    filter: dict[str, Any]

    @property
    def urn(self) -> str:
        return f"urn:lts:sink:{self.project_id}:{self.stream_id}:{self.sink_id}"


@dataclass(frozen=True, slots=True)
class Record:
    """One record of the stream: ``id`` is its line number (LTS's ``log_uid``)."""

    id: int
    trace_id: str
    time: int
    record_time: int
    content: str
    #: the content parsed; empty for an unfiltered NDJSON sink, which sends ``content`` as it is
    trace: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Batch:
    """The records to send, and the range of line numbers they were picked from (filtered ones left out).

    The same range is read again after a failure, so ``batch_id`` is the same on every retry of it: a
    receiver that keeps the ids it has seen drops a batch it got twice (OpenCTS sent it, then died or lost
    the answer before moving its cursor).
    """

    sink: Sink
    first: int
    last: int
    records: list[Record]

    @property
    def batch_id(self) -> str:
        return f"{self.sink.sink_id}:{self.first}-{self.last}"
