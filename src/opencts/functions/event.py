"""The event a CTS trigger hands to a function: ``{"cts": {...}}`` in FunctionGraph's shape.

A stored trace is in ListTraces' form, which the CTS SDK model dictates: ``code``, ``request`` and
``response`` are strings. FunctionGraph's CTS event carries the same trace the way the console shows it
(spec §4): ``code`` an int, ``request`` and ``response`` objects, and ``trace_status`` where the trace has
``trace_rating``. Handlers written for FunctionGraph (the seeds' login whitelist reads ``source_ip`` and
``trace_name``) index those fields directly, so every other stored field is passed on unchanged too.
``submitter`` stays out: it is OpenCTS's record of who wrote the trace, not part of the operation.
"""

from __future__ import annotations

from typing import Any

import orjson

#: stored fields that are never part of the event
_INTERNAL = frozenset({"submitter", "trace_rating"})


def _as_object(text: Any) -> Any:
    """The parsed JSON of a stored body; text that is not JSON is handed on as it is."""
    if not isinstance(text, str):
        return text
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _as_code(code: Any) -> Any:
    """An HTTP status as an int; a code that is not a number (some producers send words) stays text."""
    if isinstance(code, str) and code.isascii() and code.strip().isdigit():
        return int(code)
    return code


def cts_event(trace: dict[str, Any]) -> dict[str, Any]:
    """The ``{"cts": {...}}`` event for one stored trace (the JSON of ``traces.body``)."""
    inner: dict[str, Any] = {k: v for k, v in trace.items() if k not in _INTERNAL}
    if "code" in inner:
        inner["code"] = _as_code(inner["code"])
    for key in ("request", "response"):
        if key in inner:
            inner[key] = _as_object(inner[key])
    inner["trace_status"] = trace.get("trace_rating", "normal")
    return {"cts": inner}


def cts_event_json(trace: dict[str, Any]) -> bytes:
    """:func:`cts_event` as the bytes an invocation row keeps."""
    return orjson.dumps(cts_event(trace))
