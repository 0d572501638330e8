"""SMN settings, read from ``OPENCTS_*`` variables.

They live here until the lead folds them into :class:`opencts.config.Settings`; the names are the
operational interface (``OPENCTS_SMTP_HOST`` …), so moving them changes nothing for an operator.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SmnSettings(BaseSettings):
    """How notifications leave the building: the SMTP relay, the SMS gateway, and the delivery pacing."""

    model_config = SettingsConfigDict(env_prefix="OPENCTS_", extra="ignore")

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
    public_url: str | None = Field(
        None, description="Base of confirmation, unsubscribe and signing-cert links; default the bind."
    )
    allow_private_endpoints: bool = Field(
        False, description="Allow http(s) subscriptions to loopback/private addresses (local testing only)."
    )
    smn_retry_base_seconds: float = Field(1.0, gt=0, description="First retry delay; doubles per attempt.")
    smn_retry_max_seconds: float = Field(60.0, gt=0, description="Longest delay between two attempts.")
    smn_lease_seconds: float = Field(
        30.0, gt=0, description="A delivery left in flight this long (a crash) is attempted again."
    )
    smn_poll_seconds: float = Field(1.0, gt=0, description="How often an idle worker looks for due rows.")
    smn_concurrency: int = Field(16, ge=1, le=256, description="Deliveries sent at the same time.")
    smn_send_timeout_seconds: float = Field(10.0, gt=0, description="Timeout of one SMTP/HTTP attempt.")
    smn_keep_days: int = Field(
        7, ge=1, le=3650, description="Days a message stays in the outbox once every delivery of it finished."
    )

    @model_validator(mode="after")
    def _lease_outlives_a_send(self) -> SmnSettings:
        # A lease shorter than one attempt would let a second worker resend a message still being sent.
        if self.smn_lease_seconds <= self.smn_send_timeout_seconds:
            raise ValueError("OPENCTS_SMN_LEASE_SECONDS must be longer than OPENCTS_SMN_SEND_TIMEOUT_SECONDS")
        return self

    @property
    def email_enabled(self) -> bool:
        return bool(self.smtp_host)
