"""Settings, read once from ``OPENCTS_*`` environment variables (or keyword arguments in tests).

Every setting is declared here and nowhere else, so the README table and the CLI help are derived from
the same field descriptions.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from annotated_types import Ge, Gt, Le
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from opencts.clock import DAY_MS

DEFAULT_BIND = "127.0.0.1:8080"


class Settings(BaseSettings):
    """The service's configuration. Build one per process; nothing reads the environment at import time."""

    model_config = SettingsConfigDict(env_prefix="OPENCTS_", extra="ignore")

    data_dir: Path = Field(
        Path("data"), description="Where the SQLite database, credentials.json and master.key live."
    )
    bind: str = Field(DEFAULT_BIND, description="HOST:PORT the HTTP server listens on.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; default a SQLite file in the data dir (postgresql://… for shared use).",
    )
    region: str = Field(
        "local-1",
        description="Region id used in URNs, trace files and the SDK endpoint; also the first project's"
        " name.",
    )
    retention_days: int = Field(7, ge=1, le=3650, description="How many days traces stay in the trace list.")
    public_url: str | None = Field(
        None,
        description="Base URL people and subscribers reach (confirmation and unsubscribe links); default"
        " http://BIND.",
    )
    max_pending_writes: int = Field(
        64, ge=1, description="Write batches queued before ingest answers 429 instead of queueing more."
    )
    ingest_workers: int | None = Field(
        None,
        ge=0,
        description="Processes that parse and validate ingest batches beside the event loop; 0 parses in the"
        " event loop; default one per core but one (1 to 4).",
    )
    login_max_failures: int = Field(
        5, ge=1, description="Wrong passwords for one user name before its logins are refused a while."
    )
    login_max_failures_per_ip: int = Field(
        25, ge=1, description="Wrong passwords from one address (any user names) before it is refused."
    )
    login_lockout_minutes: int = Field(
        15, ge=1, le=1440, description="How long failures are counted, and how long a lockout lasts."
    )
    master_key: SecretStr | None = Field(
        None,
        description="Key sealing stored secrets: 32 bytes in base64 (`openssl rand -base64 32`); default"
        " the master key file. Every node sharing a database needs the same one.",
    )
    master_key_file: Path | None = Field(
        None,
        description="File holding the master key (base64); default master.key in the data dir, generated"
        " (0600) on the first start of an empty database.",
    )
    admin_password: SecretStr | None = Field(
        None,
        description="Password for the first admin (first start only); default a random one written to"
        " credentials.json.",
    )
    trusted_proxies: str = Field(
        "",
        description="Comma list of proxy addresses or CIDRs whose X-Forwarded-For is believed; empty = none"
        " (the client address is the connection's peer).",
    )
    request_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="Time a client has to send a whole request (headers and body); then 408 and the"
        " connection closes.",
    )

    # -- SMN: how notifications leave the building (SMTP relay, SMS gateway, delivery pacing) --------------
    smtp_host: str | None = Field(None, description="SMTP relay for email subscriptions; unset = no email.")
    smtp_port: int = Field(25, ge=1, le=65535, description="SMTP port (587 for STARTTLS, 465 for TLS).")
    smtp_security: Literal["none", "starttls", "tls"] = Field(
        "none", description="none, starttls (upgrade after connecting) or tls (TLS from the first byte)."
    )
    smtp_user: str | None = Field(None, description="SMTP login; unset = no AUTH.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password (never logged).")
    smtp_from: str = Field("opencts@localhost", description="Sender address of notification emails.")
    sms_gateway_url: str | None = Field(
        None, description='HTTP(S) URL that gets a JSON POST {"number": ..., "text": ...} per SMS.'
    )
    allow_private_endpoints: bool = Field(
        False, description="Allow http(s) subscriptions to loopback/private addresses (local testing only)."
    )
    smn_retry_base_seconds: float = Field(
        1.0, gt=0, description="First retry delay; doubles per attempt, with jitter."
    )
    smn_retry_max_seconds: float = Field(60.0, gt=0, description="Longest delay between two attempts.")
    lts_sink_allow_private_endpoints: bool = Field(
        False,
        description="Allow LTS sinks (syslog, OTLP, NDJSON) to loopback/private addresses, where SIEMs and"
        " collectors usually live; off, a sink may only reach public addresses (as SMN subscriptions).",
    )
    lts_sink_timeout_seconds: float = Field(10.0, gt=0, description="How long one LTS sink batch may take.")
    lts_sink_retry_max_seconds: float = Field(
        60.0, gt=0, description="Longest wait between two attempts of a failing LTS sink."
    )
    smn_lease_seconds: float = Field(
        30.0, gt=0, description="A delivery left in flight this long (a crash) is attempted again."
    )
    smn_poll_seconds: float = Field(1.0, gt=0, description="How often an idle worker looks for due rows.")
    smn_concurrency: int = Field(16, ge=1, le=256, description="Deliveries sent at the same time.")
    smn_send_timeout_seconds: float = Field(10.0, gt=0, description="Timeout of one SMTP/HTTP attempt.")
    smn_keep_days: int = Field(
        7, ge=1, le=3650, description="Days a message stays in the outbox once every delivery of it finished."
    )

    # -- Functions: the FunctionGraph runtime (worker processes, limits) and trigger delivery -------------
    functions_workers: int = Field(
        8, ge=1, le=512, description="Worker processes that run function handlers, over all functions."
    )
    functions_max_memory_mb: int = Field(
        2048,
        ge=128,
        le=4096,
        description="Ceiling over every function's memory_size: a worker's address space never exceeds it.",
    )
    functions_retries: int = Field(
        2,
        ge=0,
        le=10,
        description="Retries of a failed async or trigger invocation before it is a dead letter.",
    )
    functions_concurrency: int = Field(
        4, ge=1, le=256, description="Invocations of one function that run at the same time."
    )
    functions_queue_limit: int = Field(
        100,
        ge=0,
        description="Invocations of one function that wait for a worker; past this one is refused.",
    )
    functions_idle_seconds: float = Field(
        300.0, gt=0, description="How long an idle warm worker is kept for its function."
    )
    functions_keep_days: int = Field(
        7, ge=1, le=3650, description="Days a finished invocation's record (result, log) is kept."
    )
    functions_storage_access_key: str | None = Field(
        None,
        description="Access key of the S3/OBS-protocol object storage that a function's agency hands its"
        " handler as `context.getAccessKey()` (the seeds' OBS SDK calls sign with it); a key of its own,"
        " which the store limits to the buckets functions may use. Unset: the agency's OpenCTS key.",
    )
    functions_storage_secret_key: SecretStr | None = Field(
        None,
        description="Its secret key, `context.getSecretKey()`; never logged, masked in functions' logs.",
    )
    functions_storage_agencies: str = Field(
        "*",
        description="Agencies (a function's `xrole`, comma-separated) whose functions get the object"
        " storage keys; `*` = every agency. A function without an agency gets no keys at all.",
    )

    # -- Archive: trace files in object storage, encryption keys, digests and the Merkle ledger ------------
    storage_url: str | None = Field(
        None,
        description="Where trackers' buckets live: file://DIR (a bucket is a folder) or s3:// (an"
        " S3-compatible store: OBS, MinIO, AWS S3); default file://DATA_DIR/buckets.",
    )
    s3_endpoint: str | None = Field(
        None, description="Endpoint URL of the S3-compatible store (https://obs.REGION.example.com)."
    )
    s3_access_key: str | None = Field(None, description="Access key of the S3-compatible store.")
    s3_secret_key: SecretStr | None = Field(
        None, description="Secret key of the S3-compatible store (never logged)."
    )
    s3_region: str | None = Field(
        None, description="Region the S3-compatible store signs for; default REGION."
    )
    transfer_interval: float = Field(
        60.0, gt=0, le=3600, description="Seconds between two transfers of a tracker's new traces to files."
    )
    kms_master_key: SecretStr | None = Field(
        None,
        description="Key sealing the key service's key material: 32 bytes in base64; default the KMS master"
        " key file.",
    )
    kms_master_key_file: Path | None = Field(
        None,
        description="File holding the KMS master key (base64); default kms-master.key in the data dir,"
        " generated (0600) on first start.",
    )
    checkpoint_interval: float = Field(
        60.0, gt=0, le=86400, description="Seconds between two signed checkpoints of a project's Merkle tree."
    )
    signing_key_days: int = Field(
        90,
        ge=1,
        le=3650,
        description="Days a digest and checkpoint signing key signs before a new one takes over.",
    )
    ledger_origin: str | None = Field(
        None,
        description="Origin line of checkpoints (C2SP tlog-checkpoint), followed by /PROJECT_ID; default"
        " opencts.REGION.",
    )
    s3_timeout: float = Field(
        5.0,
        gt=0,
        le=600,
        description="Seconds the S3 client waits to connect and for each answer; a request is tried twice,"
        " so a store that never answers is found out in about twice this.",
    )
    lts_max_hold_hours: int = Field(
        72,
        ge=1,
        le=87600,
        description="Hours LTS keeps records past their group's ttl_in_days while a sink or LTS trigger has"
        " not read them; after that they are deleted (a warning in the log).",
    )
    archive_verify_interval: float = Field(
        86400.0,
        ge=0,
        le=31 * 86400,
        description="Seconds between two scheduled verifications of each validating tracker's archive (its"
        " digests, chain and files, as opencts verify checks them); 0: only when asked for.",
    )
    archive_max_hold_hours: int = Field(
        72,
        ge=1,
        le=87600,
        description="Hours retention keeps traces the archive has not taken yet (no written file, no"
        " digest); after that retention deletes them and the tracker shows the hold expired.",
    )
    archive_query_timeout: float = Field(
        30.0, gt=0, le=3600, description="Seconds an SQL query over the archive may run before it is stopped."
    )

    # -- Sources: OpenStack CADF audit notifications over AMQP (oslo.messaging) ------------------------------
    cadf_amqp_url: SecretStr | None = Field(
        None,
        description="AMQP URL of OpenStack's RabbitMQ (amqp://USER:PASSWORD@HOST:5672/VHOST); set, it"
        " turns the CADF consumer on (never logged).",
    )
    cadf_topic: str = Field(
        "notifications",
        pattern=r"^[0-9A-Za-z._-]{1,200}$",
        description="oslo.messaging notification topic; OpenCTS consumes its info queue, TOPIC.info.",
    )
    cadf_exchanges: str = Field(
        "openstack",
        description="Comma list of exchanges the queue is bound to (oslo.messaging's control_exchange of"
        " each service).",
    )
    cadf_project_id: str | None = Field(
        None,
        description="OpenCTS project for CADF events whose OpenStack project id is no OpenCTS project;"
        " unset = such events are dead-lettered.",
    )
    cadf_batch: int = Field(
        500,
        ge=1,
        le=5000,
        description="CADF messages written (and acknowledged) together; prefetch is four times this.",
    )
    console_idle_minutes: int = Field(
        30,
        ge=1,
        le=24 * 60,
        description="Web console sessions end after this many minutes without a page load.",
    )

    # -- Operations: Prometheus metrics, readiness and logs ------------------------------------------------
    metrics_enabled: bool = Field(True, description="Serve Prometheus metrics at /metrics.")
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token a scraper sends to /metrics (never logged); without one, /metrics needs"
        " an administrator's signed request or token.",
    )
    metrics_address: str | None = Field(
        None,
        description="HOST:PORT of a separate listener that serves only /metrics (then not served on BIND);"
        " unset = on BIND.",
    )
    ready_stuck_intervals: int = Field(
        5,
        ge=1,
        le=10000,
        description="A consumer that completed no step in this many of its poll intervals (each at least"
        " 1 s) is stuck, and /ready answers 503.",
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="text (one human line per record) or json (one JSON object per line)."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Lowest level of the records logged; --log-level overrides it."
    )

    @field_validator("bind")
    @classmethod
    def _bind_has_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("bind must be HOST:PORT, e.g. 127.0.0.1:8080")
        return value

    @field_validator("metrics_address")
    @classmethod
    def _metrics_address_has_port(cls, value: str | None) -> str | None:
        return None if value is None else cls._bind_has_port(value)

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: {item!r} is not an IP address or CIDR") from None
        return value

    @model_validator(mode="after")
    def _lease_outlives_a_send(self) -> Settings:
        # A lease shorter than one attempt would let a second worker resend a message still being sent.
        if self.smn_lease_seconds <= self.smn_send_timeout_seconds:
            raise ValueError("OPENCTS_SMN_LEASE_SECONDS must be longer than OPENCTS_SMN_SEND_TIMEOUT_SECONDS")
        return self

    @model_validator(mode="after")
    def _storage_keys_in_pairs(self) -> Settings:
        # One half of a key pair would hand functions keys that no store accepts.
        if (self.functions_storage_access_key is None) != (self.functions_storage_secret_key is None):
            raise ValueError(
                "OPENCTS_FUNCTIONS_STORAGE_ACCESS_KEY and OPENCTS_FUNCTIONS_STORAGE_SECRET_KEY go together"
            )
        # The archive's key writes trace files: in a handler's hands it could rewrite the trail.
        if self.functions_storage_access_key and self.functions_storage_access_key == self.s3_access_key:
            raise ValueError(
                "OPENCTS_FUNCTIONS_STORAGE_ACCESS_KEY is the archive's OPENCTS_S3_ACCESS_KEY: a handler could"
                " rewrite trace files; give functions a key of their own"
            )
        return self

    @property
    def trusted_proxy_list(self) -> list[str]:
        """The proxies as networks (``10.0.0.7`` -> ``10.0.0.7/32``), host bits of a CIDR dropped."""
        parts = (part.strip() for part in self.trusted_proxies.split(","))
        return [str(ipaddress.ip_network(part, strict=False)) for part in parts if part]

    @property
    def host(self) -> str:
        return self.bind.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.bind.rpartition(":")[2])

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'opencts.db').resolve()}"

    @property
    def resolved_public_url(self) -> str:
        return (self.public_url or f"http://{self.bind}").rstrip("/")

    @property
    def credentials_path(self) -> Path:
        return self.data_dir / "credentials.json"

    @property
    def retention_ms(self) -> int:
        return self.retention_days * DAY_MS


# -- the settings table of the README, rendered from the fields above ------------------------------------

TABLE_START = "<!-- settings-table: generated by `python -m opencts.config --markdown`; do not edit -->"
TABLE_END = "<!-- /settings-table -->"


def _default_text(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "`1`" if value else "`0`"
    if value == "":
        return "empty"
    return f"`{value}`"


def _allowed_text(info: FieldInfo) -> str:
    choices = [a for a in get_args(info.annotation) if isinstance(a, str)]
    if choices:
        return ", ".join(f"`{c}`" for c in choices)
    low = next((f"≥ {m.ge}" for m in info.metadata if isinstance(m, Ge)), "")
    low = low or next((f"> {m.gt}" for m in info.metadata if isinstance(m, Gt)), "")
    high = next((f"≤ {m.le}" for m in info.metadata if isinstance(m, Le)), "")
    return ", ".join(part for part in (low, high) if part)


def settings_table() -> str:
    """The README's table of every setting: variable, default, allowed values and description."""
    rows = ["| variable | default | allowed | meaning |", "|---|---|---|---|"]
    for name, info in Settings.model_fields.items():
        default = _default_text(info.default)
        rows.append(f"| `OPENCTS_{name.upper()}` | {default} | {_allowed_text(info)} | {info.description} |")
    return "\n".join(rows) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m opencts.config", description="Describe the settings.")
    parser.add_argument("--markdown", action="store_true", help="print the README's settings table")
    args = parser.parse_args(argv)
    if args.markdown:
        sys.stdout.write(settings_table())
    else:
        parser.print_help()


if __name__ == "__main__":
    main()
