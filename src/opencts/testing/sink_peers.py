"""Real receivers of LTS sinks for tests and benchmarks: an HTTP server taking NDJSON or OTLP/HTTP logs
(parsed with ``opentelemetry-proto``), and rsyslog (the Debian package) with TLS, started with its own config.

The HTTP receiver keeps every request; a batch it has seen (by ``X-OpenCTS-Message-Id``) counts once in
:meth:`SinkReceiver.trace_ids`, as an idempotent receiver would, while :attr:`SinkReceiver.batches` keeps
the raw arrivals so a test can tell a resent batch from a doubled record.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from opencts.testing.ports import free_port


@dataclass
class Arrival:
    batch_id: str
    headers: dict[str, str]
    body: bytes
    #: NDJSON: the traces; OTLP: each log record as {"body": str, "attributes": {...}, ...}
    items: list[dict[str, Any]]


def _any(value: Any) -> Any:
    """An OTLP ``AnyValue``'s scalar."""
    which = value.WhichOneof("value")
    return getattr(value, which) if which else None


@dataclass
class SinkReceiver:
    """An HTTP receiver on 127.0.0.1: ``kind`` ``ndjson`` or ``otlp``; 503 while ``down``; ``stop()`` to
    refuse connections altogether and ``start()`` again on the same port."""

    kind: str = "ndjson"
    port: int = field(default_factory=free_port)
    down: bool = False
    #: seconds each answer is held back after the batch is recorded (a slow receiver)
    delay: float = 0.0
    #: off (benchmarks): a batch is still parsed (NDJSON lines, the protobuf message) but not kept
    keep: bool = True
    batches: list[Arrival] = field(default_factory=list)
    refused: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/" + ("v1/logs" if self.kind == "otlp" else "ingest")

    def start(self) -> SinkReceiver:
        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SinkReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _parse(self, raw: bytes) -> list[dict[str, Any]]:
        if not self.keep:
            if self.kind == "ndjson":
                orjson.loads(b"[" + b",".join(raw.splitlines()) + b"]")
            else:
                from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

                ExportLogsServiceRequest.FromString(raw)
            return []
        if self.kind == "ndjson":
            return [orjson.loads(line) for line in raw.splitlines() if line]
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

        request = ExportLogsServiceRequest.FromString(raw)
        out = []
        for rl in request.resource_logs:
            resource = {a.key: _any(a.value) for a in rl.resource.attributes}
            for sl in rl.scope_logs:
                for rec in sl.log_records:
                    attrs = {a.key: _any(a.value) for a in rec.attributes}
                    out.append(
                        {
                            "body": rec.body.string_value,
                            "attributes": attrs,
                            "resource": resource,
                            "severity_text": rec.severity_text,
                            "severity_number": int(rec.severity_number),
                            "time_unix_nano": int(rec.time_unix_nano),
                            "scope": sl.scope.name,
                        }
                    )
        return out

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                if receiver.down:
                    with receiver._lock:
                        receiver.refused += 1
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                try:
                    items = receiver._parse(raw)
                except Exception:
                    self.send_response(400)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                arrival = Arrival(
                    self.headers.get("X-OpenCTS-Message-Id", ""), dict(self.headers), raw, items
                )
                with receiver._lock:
                    receiver.batches.append(arrival)
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def arrivals(self) -> list[Arrival]:
        with self._lock:
            return list(self.batches)

    def items(self, *, dedupe: bool = True) -> list[dict[str, Any]]:
        seen: set[str] = set()
        out: list[dict[str, Any]] = []
        for a in self.arrivals():
            if dedupe and a.batch_id in seen:
                continue
            seen.add(a.batch_id)
            out.extend(a.items)
        return out

    def trace_ids(self, *, dedupe: bool = True) -> list[str]:
        if self.kind == "otlp":
            return [str(i["attributes"].get("log.record.uid")) for i in self.items(dedupe=dedupe)]
        return [str(i.get("trace_id")) for i in self.items(dedupe=dedupe)]


# -- TLS material and rsyslog ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """A test CA, a server certificate for 127.0.0.1/localhost and a client certificate, all in PEM."""

    ca_cert: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def make_pki() -> Pki:
    import ipaddress

    now = dt.datetime.now(dt.UTC)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "OpenCTS test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(cn: str, usage: x509.ObjectIdentifier, san: list[x509.GeneralName]) -> tuple[str, str]:
        key = _key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode(), _pem_key(key)

    server_cert, server_key = leaf(
        "localhost",
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client_cert, client_key = leaf(
        "opencts-client", ExtendedKeyUsageOID.CLIENT_AUTH, [x509.DNSName("client")]
    )
    return Pki(
        ca.public_bytes(serialization.Encoding.PEM).decode(), server_cert, server_key, client_cert, client_key
    )


def rsyslogd() -> str | None:
    return shutil.which("rsyslogd") or (os.path.exists("/usr/sbin/rsyslogd") and "/usr/sbin/rsyslogd") or None


class Rsyslog:
    """rsyslogd in the foreground with its own config: imtcp with the ossl driver (TLS, a client certificate
    required when ``require_client_cert``), octet-counted frames, each message's MSG written as one line
    of ``out``."""

    def __init__(self, workdir: Path, pki: Pki, *, require_client_cert: bool = True) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.out = self.dir / "received.log"
        self.pki = pki
        self.require_client_cert = require_client_cert
        self._process: subprocess.Popen[bytes] | None = None

    def _config(self) -> Path:
        files = {
            "ca.pem": self.pki.ca_cert,
            "server.pem": self.pki.server_cert,
            "server-key.pem": self.pki.server_key,
        }
        for name, text in files.items():
            (self.dir / name).write_text(text)
        mode = "x509/certvalid" if self.require_client_cert else "anon"
        conf = f"""
global(workDirectory="{self.dir}"
       defaultNetstreamDriver="ossl"
       defaultNetstreamDriverCAFile="{self.dir}/ca.pem"
       defaultNetstreamDriverCertFile="{self.dir}/server.pem"
       defaultNetstreamDriverKeyFile="{self.dir}/server-key.pem")
module(load="imtcp" StreamDriver.Name="ossl" StreamDriver.Mode="1" StreamDriver.AuthMode="{mode}"
       MaxSessions="50")
input(type="imtcp" port="{self.port}" address="127.0.0.1" ruleset="sink")
template(name="line" type="string" string="%syslogtag%|%msgid%|%structured-data%|%msg%\\n")
ruleset(name="sink") {{
  action(type="omfile" file="{self.out}" template="line" flushOnTXEnd="on" asyncWriting="off")
}}
"""
        path = self.dir / "rsyslog.conf"
        path.write_text(conf)
        return path

    def start(self, timeout: float = 15.0) -> Rsyslog:
        binary = rsyslogd()
        assert binary, "rsyslogd is not installed (apt-get install rsyslog rsyslog-openssl)"
        conf = self._config()
        with open(self.dir / "rsyslogd.out", "ab") as log:
            self._process = subprocess.Popen(
                [binary, "-n", "-f", str(conf), "-i", str(self.dir / "rsyslogd.pid")],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError("rsyslogd exited: " + (self.dir / "rsyslogd.out").read_text()[-2000:])
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("rsyslogd did not listen")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> Rsyslog:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def lines(self) -> list[str]:
        return self.out.read_text().splitlines() if self.out.exists() else []

    def messages(self) -> list[dict[str, Any]]:
        """Each line's MSG parsed as the trace JSON it carries."""
        return [orjson.loads(line.split("|", 3)[3]) for line in self.lines()]
