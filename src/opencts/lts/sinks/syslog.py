"""syslog, RFC 5424 messages over TCP with octet-counting framing (RFC 6587), TLS by default (RFC 5425).

One message per record::

    <PRI>1 TIMESTAMP HOSTNAME APP-NAME - MSGID [opencts@32473 log_uid=".." stream=".." trace_id=".."] MSG

PRI is the sink's facility (13, log audit, by default) and a severity from the trace's rating (normal:
6 informational, warning: 4, incident: 2 critical); TIMESTAMP is the trace's time; MSGID its
``trace_name``; MSG the trace as JSON, which every SIEM parses. The frame is ``LEN SP MSG``, LEN the byte
length, so a message may hold newlines.

TLS verifies the receiver's certificate (the sink's CA or the system's) against ``server_name`` or the
endpoint's host, and presents the client certificate when the sink has one. The connection stays open
between batches. syslog has no acknowledgement: a batch counts as sent when the kernel took it and the
connection is still open; a receiver that closed meanwhile is noticed before the next batch, which then
goes over a new connection.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl

from opencts.clock import iso_ms
from opencts.lts.sinks.batch import Batch, Record, SinkError
from opencts.lts.sinks.model import host_port, tls_context

#: the private enterprise number RFC 5424 uses in its examples; SD-IDs with "@" are the sender's own
SD_ID = "opencts@32473"
#: how long a new TLS connection waits for the server to refuse the client certificate (see ``_settled``)
VERDICT_SECONDS = 0.2
SEVERITY = {"normal": 6, "warning": 4, "incident": 2}
_NOT_PRINTABLE = re.compile(r"[^!-~]")


def _sd_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _field(value: object, limit: int) -> str:
    text = _NOT_PRINTABLE.sub("_", str(value or ""))[:limit]
    return text or "-"


def message(record: Record, *, stream_id: str, hostname: str, app_name: str, facility: int) -> bytes:
    """One RFC 5424 message (unframed)."""
    trace = record.trace
    severity = SEVERITY.get(str(trace.get("trace_rating")), 6)
    sd = (
        f'[{SD_ID} log_uid="{record.id}" stream="{_sd_value(stream_id)}"'
        f' trace_id="{_sd_value(record.trace_id)}"]'
    )
    head = (
        f"<{facility * 8 + severity}>1 {iso_ms(record.time)} {_field(hostname, 255)}"
        f" {_field(app_name, 48)} - {_field(trace.get('trace_name'), 32)} {sd} "
    )
    return head.encode() + record.content.encode()


def frame(msg: bytes) -> bytes:
    return str(len(msg)).encode() + b" " + msg


class SyslogSender:
    """Keeps one connection to the sink's receiver and writes framed messages to it."""

    def __init__(self, *, timeout: float) -> None:
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ctx: ssl.SSLContext | None = None

    def _alive(self) -> bool:
        w, r = self._writer, self._reader
        return w is not None and r is not None and not w.is_closing() and not r.at_eof()

    async def _connect(self, batch: Batch) -> asyncio.StreamWriter:
        sink = batch.sink
        host, port = host_port(sink.endpoint)
        use_tls = bool(sink.settings.get("tls", True))
        if use_tls and self._ctx is None:
            self._ctx = tls_context(sink.settings, sink.secrets)
        name = sink.settings.get("server_name") or host
        try:
            async with asyncio.timeout(self.timeout):
                self._reader, self._writer = await asyncio.open_connection(
                    host, port, ssl=self._ctx if use_tls else None, server_hostname=name if use_tls else None
                )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise SinkError(f"syslog {sink.endpoint}: connect: {type(exc).__name__}: {exc}"[:500]) from None
        if use_tls:
            await self._settled(sink.endpoint)
        return self._writer

    async def _settled(self, endpoint: str) -> None:
        """Wait :data:`VERDICT_SECONDS` for the server's verdict on a new TLS connection.

        With TLS 1.3 the server checks the client certificate after the client's handshake has finished,
        and refuses it with an alert the client sees only when it reads: without this wait the first batch
        would be written into a connection already refused. A syslog server never writes, so anything but
        a timeout here is a refusal.
        """
        assert self._reader is not None
        try:
            async with asyncio.timeout(VERDICT_SECONDS):
                got = await self._reader.read(1)
        except TimeoutError:
            return
        except (OSError, ssl.SSLError) as exc:
            await self.aclose()
            raise SinkError(f"syslog {endpoint}: refused: {type(exc).__name__}: {exc}"[:500]) from None
        await self.aclose()
        raise SinkError(
            f"syslog {endpoint}: refused: the server " + ("wrote" if got else "closed the connection")
        )

    async def send(self, batch: Batch) -> None:
        sink = batch.sink
        writer = self._writer if self._alive() else None
        if writer is None:
            await self.aclose()
            writer = await self._connect(batch)
        settings = sink.settings
        hostname = settings.get("hostname") or socket.gethostname()
        data = b"".join(
            frame(
                message(
                    r,
                    stream_id=sink.stream_id,
                    hostname=hostname,
                    app_name=str(settings.get("app_name") or "opencts"),
                    facility=int(settings.get("facility", 13)),
                )
            )
            for r in batch.records
        )
        try:
            writer.write(data)
            async with asyncio.timeout(self.timeout):
                await writer.drain()
            await asyncio.sleep(0)  # let a reset or close that came meanwhile reach the reader
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            await self.aclose()
            raise SinkError(f"syslog {sink.endpoint}: send: {type(exc).__name__}: {exc}"[:500]) from None
        if not self._alive():
            await self.aclose()
            raise SinkError(f"syslog {sink.endpoint}: the receiver closed the connection")

    async def aclose(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()
            except (OSError, TimeoutError, ssl.SSLError):
                pass
