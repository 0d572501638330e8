"""CTS trace files (from an OBS bucket, or written by OpenCTS's own transfer) as traces to ingest again.

A CTS trace file (``CloudTraces/REGION/Y/M/D/TRACKER/SERVICE/..._CloudTrace_....json.gz``, spec §2.2)
holds a JSON array of traces in the structure ListTraces returns. Each is sent as it is, less what only
the receiving service sets: ``record_time`` (now), ``project_id`` (the project imported into),
``submitter`` (the importing user) and any field the trace structure does not have. The trace keeps its
``trace_id``, so importing the same files again adds nothing. Encrypted files (``.enc``) and digests
are not trace files and are skipped.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson

from opencts.importers.files import ImportFileError
from opencts.traces.model import DomainInfo, SessionAttributes, SessionContext, TraceIn, UserInfo

#: trace ids for traces without one are uuid5 of the trace under this namespace
ID_NAMESPACE = uuid.UUID("8d1e4b7c-3a2f-4c9e-b6d0-5f7a9c2e1b43")
#: folders of a CTS bucket that hold no trace files
EXCLUDE = ("Digest",)
_SET_BY_SERVICE = frozenset({"record_time", "project_id", "submitter"})
_TRACE_FIELDS = frozenset(TraceIn.model_fields) - _SET_BY_SERVICE
_USER_FIELDS = frozenset(UserInfo.model_fields)
_DOMAIN_FIELDS = frozenset(DomainInfo.model_fields)
_SESSION_FIELDS = frozenset(SessionContext.model_fields)
_ATTRIBUTE_FIELDS = frozenset(SessionAttributes.model_fields)


def extract(path: Path, document: Any) -> list[Any]:
    """The traces of a trace file: a JSON array, ``{"traces": [...]}``, or one trace per line."""
    if isinstance(document, dict) and isinstance(document.get("traces"), list):
        document = document["traces"]
    elif isinstance(document, dict) and "trace_name" in document:
        document = [document]
    if not isinstance(document, list):
        raise ImportFileError(f"{path}: not a CTS trace file (a JSON array of traces)")
    return document


def to_trace(item: Any) -> dict[str, Any]:
    """The trace to send for one stored trace; ValueError when it is not a JSON object."""
    if not isinstance(item, dict):
        raise ValueError("a trace must be a JSON object")
    trace = {k: v for k, v in item.items() if k in _TRACE_FIELDS and v is not None}
    if isinstance(trace.get("user"), dict):
        trace["user"] = _user(trace["user"])
    if isinstance(trace.get("time"), str) and trace["time"].isdigit():
        trace["time"] = int(trace["time"])
    if not trace.get("trace_id"):
        trace["trace_id"] = str(
            uuid.uuid5(ID_NAMESPACE, orjson.dumps(item, option=orjson.OPT_SORT_KEYS).decode())
        )
    return trace


def _user(user: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in user.items() if k in _USER_FIELDS and v is not None}
    if isinstance(out.get("domain"), dict):
        out["domain"] = {k: v for k, v in out["domain"].items() if k in _DOMAIN_FIELDS and v is not None}
    session = out.get("session_context")
    if isinstance(session, dict):
        session = {k: v for k, v in session.items() if k in _SESSION_FIELDS and v is not None}
        if isinstance(session.get("attributes"), dict):
            attributes = session["attributes"].items()
            session["attributes"] = {k: v for k, v in attributes if k in _ATTRIBUTE_FIELDS and v is not None}
        out["session_context"] = session
    return out
