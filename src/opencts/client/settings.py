"""The client's settings, read from ``OPENCTS_CLIENT_*`` environment variables (or keyword arguments).

An application that audits through OpenCTS is configured where it runs, like OpenCTS itself: twelve-factor
variables, so the same code records into a laptop's OpenCTS and production's without a change. Nothing is
read at import time; :meth:`ClientSettings.from_env` is called by whoever builds a client.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: the ingest API's limits and grammar (``opencts.traces``), repeated so the client imports nothing of the
#: server; tests/client/test_client_settings.py holds them equal
MAX_BATCH_TRACES = 1000
MAX_BATCH_BYTES = 5 * 1024 * 1024
SERVICE_TYPE_PATTERN = r"^[A-Z][0-9A-Za-z_-]{0,63}$"

__all__ = ["ClientSettings", "default_spool_dir"]


def default_spool_dir() -> Path:
    """``$XDG_STATE_HOME/opencts-client`` (``~/.local/state/opencts-client``): state that must outlive the
    process but is no one's document, which is what XDG's state directory is for."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "opencts-client"


class ClientSettings(BaseSettings):
    """Where to send traces, as whom, and how hard to try. Every field is ``OPENCTS_CLIENT_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="OPENCTS_CLIENT_", extra="ignore")

    endpoint: str = Field("http://127.0.0.1:8080", description="The OpenCTS base URL.")
    project_id: str = Field("", description="The project the traces go into.")
    access_key: str = Field("", description="AK of a user allowed to put traces (cts:traces:put).")
    secret_key: SecretStr = Field(SecretStr(""), description="SK of that access key.")
    enabled: bool = Field(True, description="False records nothing (tests, local runs without OpenCTS).")
    service_type: str = Field(
        "APP", pattern=SERVICE_TYPE_PATTERN, description="service_type of the traces the app records."
    )
    batch_max_traces: int = Field(
        500, ge=1, le=MAX_BATCH_TRACES, description="Traces in one batch at most (the API takes 1,000)."
    )
    batch_max_bytes: int = Field(
        1_048_576, ge=4096, le=MAX_BATCH_BYTES, description="Bytes of one batch body at most (API: 5 MiB)."
    )
    flush_interval: float = Field(
        1.0, gt=0, le=3600, description="Seconds a recorded trace waits at most before its batch is sealed."
    )
    buffer_max_traces: int = Field(
        10_000,
        ge=1,
        description="Traces held in memory before sealing; more are dropped (counted) rather than block.",
    )
    spool_dir: Path | None = Field(
        None,
        description="Where sealed batches wait on disk until OpenCTS has them; default"
        " $XDG_STATE_HOME/opencts-client. Empty keeps them in memory only (lost when the process ends).",
    )
    spool: bool = Field(True, description="Keep sealed batches on disk (spool_dir); false: memory only.")
    spool_max_bytes: int = Field(
        256 * 1_048_576,
        ge=0,
        description="Bytes of batches kept waiting (disk, or memory without a spool); new batches past it"
        " are dropped and counted.",
    )
    spool_fsync: bool = Field(
        True, description="fsync each spooled batch, so it survives power loss, not only a crash."
    )
    timeout: float = Field(10.0, gt=0, description="Seconds for one HTTP request to OpenCTS.")
    retry_base: float = Field(0.5, gt=0, description="First retry delay in seconds; doubles each failure.")
    retry_max: float = Field(30.0, gt=0, description="Longest retry delay in seconds.")
    shutdown_timeout: float = Field(
        5.0, ge=0, description="Seconds close() spends sending before leaving the rest in the spool."
    )

    def resolved_spool_dir(self) -> Path | None:
        """The spool directory in use, or None when batches wait in memory."""
        if not self.spool:
            return None
        return self.spool_dir if self.spool_dir is not None else default_spool_dir()
