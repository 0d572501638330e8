"""A sink's body (``CreateLtsSinkRequestBody``) and its filter, which is the key event notifications' model.

The filter reuses :mod:`opencts.notifications.model` (``Operation``, ``NotificationUsers``, ``Filter``) and
:mod:`opencts.notifications.matcher` (a sink's filter compiles into a one-notification ``Matcher``), so a
rule a notification accepts means the same on a sink, and a SIEM gets only what it asks for.

What is secret (custom headers, which carry API keys, and a client certificate's private key) is kept apart
in :meth:`CreateSinkBody.secrets`, sealed under the master key by the repository and never rendered back.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from opencts.notifications.matcher import Matcher, Notification, compile_matcher
from opencts.notifications.model import MAX_USERS, Filter, NotificationUsers, Operation

SINK_TYPES = ("ndjson", "syslog", "otlp")
SinkType = Literal["ndjson", "syslog", "otlp"]
SinkName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
HeaderName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")]
HeaderValue = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]{0,2048}$")]
Pem = Annotated[str, StringConstraints(min_length=1, max_length=65_536)]
#: headers a sink may not set: they are OpenCTS's own (signature, framing)
RESERVED_HEADERS = ("content-type", "content-length", "host", "content-encoding", "transfer-encoding")
MAX_SINKS_PER_STREAM = 10


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class SinkFilter(_Body):
    """Which records go: the key event notification model (operations, users, advanced filter)."""

    operation_type: Literal["complete", "customized"] = "complete"
    operations: list[Operation] | None = None
    notify_user_list: list[NotificationUsers] | None = None
    filter: Filter | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SinkFilter:
        ops = self.operations or []
        if self.operation_type == "customized" and not ops:
            raise ValueError("operation_type customized needs at least one entry in operations")
        if self.operation_type == "complete" and ops:
            raise ValueError("operations apply only to operation_type customized")
        users = sum(len(set(g.user_list)) for g in self.notify_user_list or [])
        if users > MAX_USERS:
            raise ValueError(f"notify_user_list holds at most {MAX_USERS} users in total, not {users}")
        return self

    def config(self) -> dict[str, Any]:
        """What the ``filter`` column stores, in the shape ``Notification.from_config`` reads."""
        return {
            "operation_type": self.operation_type,
            "operations": [o.model_dump() for o in self.operations or []],
            "notify_user_list": [g.model_dump() for g in self.notify_user_list or []],
            "filter": self.filter.model_dump() if self.filter is not None else None,
        }


def compile_filter(sink_id: str, project_id: str, config: Mapping[str, Any]) -> Matcher | None:
    """The stored filter as a matcher; None when it lets every record through (nothing to check)."""
    n = Notification.from_config(
        notification_id=sink_id,
        project_id=project_id,
        name=sink_id,
        notification_type="sink",
        topic_id="",
        operation_type=str(config.get("operation_type") or "complete"),
        config=config,
    )
    if n.operation_type == "complete" and n.users is None and not n.rules:
        return None
    return compile_matcher([n])


class CreateSinkBody(_Body):
    """A new sink of a stream. ``endpoint`` is an http(s) URL (ndjson, otlp) or ``host:port`` (syslog)."""

    sink_name: SinkName
    sink_type: SinkType
    endpoint: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    #: sent with every request (ndjson, otlp); sealed, since they usually carry an API key. The names of
    #: this and ``client_private_key`` say "secret"/"private", so the self-audit redacts them from the trail
    secret_headers: dict[HeaderName, HeaderValue] | None = Field(None, max_length=16)
    #: syslog: TLS on (the default) or plain TCP; http(s) sinks follow their URL's scheme
    tls: bool = True
    #: PEM CA certificate(s) the receiver's certificate must chain to (default: the system's)
    ca_cert: Pem | None = None
    #: the name the receiver's certificate must carry (default: the endpoint's host)
    server_name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9.-]{1,253}$")] | None = None
    #: a client certificate (PEM) and its private key (PEM, sealed), for receivers that ask for one
    client_cert: Pem | None = None
    client_private_key: Pem | None = None
    #: syslog's HOSTNAME and APP-NAME fields, and its facility (13 = log audit)
    hostname: Annotated[str, StringConstraints(pattern=r"^[!-~]{1,255}$")] | None = None
    app_name: Annotated[str, StringConstraints(pattern=r"^[!-~]{1,48}$")] = "opencts"
    facility: int = Field(13, ge=0, le=23)
    batch_size: int = Field(100, ge=1, le=1000)
    records_filter: SinkFilter = SinkFilter()

    @model_validator(mode="after")
    def _endpoint(self) -> CreateSinkBody:
        if self.sink_type == "syslog":
            host_port(self.endpoint)
            if self.secret_headers:
                raise ValueError("secret_headers apply to ndjson and otlp sinks, not syslog")
        else:
            parts = urlsplit(self.endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"endpoint of an {self.sink_type} sink is an http(s) URL")
            if parts.username or parts.password:
                raise ValueError(
                    "endpoint may not carry credentials; put them in secret_headers, which are sealed"
                )
        _check_headers(self.secret_headers or {})
        if (self.client_cert is None) != (self.client_private_key is None):
            raise ValueError("client_cert and client_private_key go together")
        if self.client_cert is not None and self.client_private_key is not None:
            check_client_pair(self.client_cert, self.client_private_key)
        if self.ca_cert is not None:
            try:
                x509.load_pem_x509_certificates(self.ca_cert.encode())
            except ValueError:
                raise ValueError("ca_cert is not a PEM certificate") from None
        return self

    def settings(self) -> dict[str, Any]:
        """What the ``settings`` column stores: everything but the secrets."""
        return {
            "tls": self.tls,
            "ca_cert": self.ca_cert,
            "server_name": self.server_name,
            "client_cert": self.client_cert,
            "hostname": self.hostname,
            "app_name": self.app_name,
            "facility": self.facility,
            "batch_size": self.batch_size,
            "header_names": sorted(self.secret_headers or {}),
        }

    def secrets(self) -> dict[str, Any] | None:
        found = {"headers": dict(self.secret_headers or {}), "client_key": self.client_private_key}
        return found if self.secret_headers or self.client_private_key else None


def _check_headers(headers: Mapping[str, str]) -> None:
    for name in headers:
        if name.lower() in RESERVED_HEADERS or name.lower().startswith("x-opencts-"):
            raise ValueError(f"header {name} is set by OpenCTS itself")


def host_port(endpoint: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) of a syslog endpoint."""
    parts = urlsplit("//" + endpoint)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or parts.path or parts.query or parts.username:
        raise ValueError("endpoint of a syslog sink is host:port (e.g. siem.example.com:6514)")
    return parts.hostname, port


def check_client_pair(cert_pem: str, key_pem: str) -> None:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError(
            "client_cert/client_private_key: not a PEM certificate and unencrypted PEM key"
        ) from None
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*raw) != key.public_key().public_bytes(*raw):
        raise ValueError("client_private_key is not the key of client_cert")


def tls_context(settings: Mapping[str, Any], secrets: Mapping[str, Any]) -> ssl.SSLContext:
    """Server verification always (the given CA or the system's), and the client certificate if any."""
    ca = settings.get("ca_cert")
    ctx = ssl.create_default_context(cadata=ca) if ca else ssl.create_default_context()
    cert, key = settings.get("client_cert"), secrets.get("client_key")
    if cert and key:
        load_client_pair(ctx, str(cert), str(key))
    return ctx


def load_client_pair(ctx: ssl.SSLContext, cert_pem: str, key_pem: str) -> None:
    """``load_cert_chain`` reads files only: hand it an anonymous in-memory file (never on disk)."""
    import os

    fd = os.memfd_create("opencts-sink-client", 0)
    try:
        os.write(fd, cert_pem.encode() + b"\n" + key_pem.encode())
        ctx.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
