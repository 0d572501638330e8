"""One way to turn a pydantic ``ValidationError`` into the line a caller reads in ``error_msg``.

Bodies validated by hand (:func:`describe`) and parameters FastAPI validated before the handler ran
(:func:`describe_request`) read the same: ``field.path: reason; ...``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

#: where FastAPI says a parameter came from, in front of its path; the caller knows, and it is noise
_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})


def describe(exc: ValidationError) -> str:
    """``field.path: reason; ...`` without pydantic's noise, so the caller knows what to fix."""
    return describe_errors(exc.errors(include_url=False, include_input=False))


def describe_request(errors: Iterable[Mapping[str, Any]]) -> str:
    """:func:`describe` for the errors of FastAPI's ``RequestValidationError`` (its ``errors()``)."""
    stripped = []
    for err in errors:
        loc = tuple(err.get("loc", ()))
        stripped.append({**err, "loc": loc[1:] if loc[:1] and loc[0] in _SOURCES else loc})
    return describe_errors(stripped) or "invalid request"


def describe_errors(errors: Iterable[Mapping[str, Any]]) -> str:
    parts = []
    for err in errors:
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        if err.get("type") == "missing":
            msg = "is required"
        elif err.get("type") == "extra_forbidden":
            msg = "is not a field of this request"
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)
