"""Request bodies of the KMS API, as ``huaweicloudsdkkms`` sends them (its string-typed numbers included).

Fields KMS has and OpenCTS does not use (``sequence``, ``origin``, ``keystore_id``...) are accepted and
ignored, so SDK calls written for KMS work unchanged; a key spec or usage other than AES-256 encryption
is refused, since the key service holds symmetric keys for envelope encryption only.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: KMS's alias rule: letters, digits, ``:/_-``, 1 to 255 characters
_ALIAS = re.compile(r"^[a-zA-Z0-9:/_-]{1,255}$")
KEY_SPEC = "AES_256"
KEY_USAGE = "ENCRYPT_DECRYPT"


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class CreateKey(_Body):
    key_alias: str
    key_description: str = Field("", max_length=255)
    key_spec: str = KEY_SPEC
    key_usage: str = KEY_USAGE

    @field_validator("key_alias")
    @classmethod
    def _alias(cls, value: str) -> str:
        if not _ALIAS.match(value):
            raise ValueError("key_alias must be 1-255 letters, digits, ':', '/', '_' or '-'")
        if value.endswith("/default"):
            raise ValueError("key_alias must not end with /default: that suffix is KMS's default keys'")
        return value

    @field_validator("key_spec")
    @classmethod
    def _spec(cls, value: str) -> str:
        if value != KEY_SPEC:
            raise ValueError(f"key_spec must be {KEY_SPEC}: the key service holds symmetric keys only")
        return value

    @field_validator("key_usage")
    @classmethod
    def _usage(cls, value: str) -> str:
        if value != KEY_USAGE:
            raise ValueError(f"key_usage must be {KEY_USAGE}")
        return value


class KeyRef(_Body):
    """describe-key, enable-key, disable-key, rotate-key: one key, by id."""

    key_id: str = Field(min_length=1, max_length=36)


class ListKeys(_Body):
    limit: str | None = None
    marker: str | None = None
    key_state: str | None = None

    @field_validator("limit")
    @classmethod
    def _limit(cls, value: str | None) -> str | None:
        if value is not None and (not value.isdigit() or not 1 <= int(value) <= 1000):
            raise ValueError("limit must be a number from 1 to 1000 (as a string)")
        return value

    @field_validator("marker")
    @classmethod
    def _marker(cls, value: str | None) -> str | None:
        if value is not None and value and not value.isdigit():
            raise ValueError("marker must be the next_marker of an earlier page")
        return value

    @field_validator("key_state")
    @classmethod
    def _state(cls, value: str | None) -> str | None:
        if value is not None and value not in ("1", "2", "3", "4", "5"):
            raise ValueError("key_state must be 1 to 5 (2 enabled, 3 disabled)")
        return value
