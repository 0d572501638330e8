"""Who handed a trace to OpenCTS: set by the server on every trace, never read from its body.

A trace's own fields (``user``, ``trace_type``, ``service_type``...) are whatever its producer wrote, so a
producer key can write a trace that reads exactly like OpenCTS's record of an admin's action. The
submitter is what tells them apart: the authenticated principal that posted the batch, or OpenCTS itself
for its self-audit. It is stored twice: as ``submitter`` in the stored JSON (so ListTraces and the NDJSON
export carry it with no work at read time) and as a short label in its own column (so the CSV export
needs no JSON).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opencts.iam.principal import Principal

#: the ``type`` of a submitter: a principal that authenticated to the ingest API, or the service itself
USER = "user"
SERVICE = "service"
SERVICE_NAME = "OpenCTS"


@dataclass(frozen=True, slots=True)
class Submitter:
    """The ``submitter`` object written into each stored trace, and its label for the column."""

    record: dict[str, Any]
    #: "OpenCTS" for the self-audit, else "<user name> (<access key id or token>)": never equal
    label: str

    @classmethod
    def of(cls, principal: Principal) -> Submitter:
        """The caller of the ingest API. Its account is the project's (no caller writes into another
        account's project), so it is not repeated in every trace."""
        record: dict[str, Any] = {
            "type": USER,
            "user_id": principal.user_id,
            "user_name": principal.user_name,
            "auth": principal.method,
        }
        if principal.access_key:
            record["access_key_id"] = principal.access_key
        return cls(record, label_of(record))


def label_of(record: Any) -> str:
    """The column's label for a stored ``submitter`` record; clients (the CLI) show the same words.

    A trace stored before submitters were recorded has none, and gets an empty label.
    """
    if not isinstance(record, dict):
        return ""
    if record.get("type") == SERVICE:
        return str(record.get("name") or SERVICE_NAME)
    return f"{record.get('user_name', '')} ({record.get('access_key_id') or record.get('auth', '')})"


#: OpenCTS's own records: its self-audit of logins, denials and writes to its APIs
SELF = Submitter({"type": SERVICE, "name": SERVICE_NAME}, SERVICE_NAME)
