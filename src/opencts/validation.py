"""One way to turn a pydantic ``ValidationError`` into the line a caller reads in ``error_msg``."""

from __future__ import annotations

from pydantic import ValidationError


def describe(exc: ValidationError) -> str:
    """``field.path: reason; ...`` without pydantic's noise, so the caller knows what to fix."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "is required"
        elif err["type"] == "extra_forbidden":
            msg = "is not a field of this request"
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)
