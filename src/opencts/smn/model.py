"""Request bodies of the SMN v2 operations, with SMN's own limits, and endpoint validation per protocol.

Everything a client can get wrong is caught here and becomes a 400 that names the field; nothing in the
handlers below has to re-check. The SDK never checks required fields itself (spec §5.8), so we do.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlsplit

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    field_validator,
    model_validator,
)

#: what OpenCTS delivers; the other SMN protocols are refused with this list in the message
PROTOCOLS: tuple[str, ...] = ("email", "sms", "http", "https")
#: every protocol SMN itself knows (spec §3), so the refusal can say "not supported" rather than "unknown"
SMN_PROTOCOLS = frozenset(
    {*PROTOCOLS, "functionstage", "functiongraph", "callnotify", "wechat", "dingding", "feishu", "welink"}
    | {"dingTalkBot", "default"}
)
MAX_MESSAGE_BYTES = 256 * 1024
MAX_TTL_SECONDS = 86_400
DEFAULT_TTL_SECONDS = 3_600

_TOPIC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}")
_EMAIL = re.compile(r"[^@\s<>()\[\],;:\"\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.?)*[A-Za-z0-9]")
_PHONE = re.compile(r"\+?[1-9][0-9]{5,14}")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: headers a subscription's ``extension.header`` may not set: they frame or route the request (a forged
#: Content-Length or Transfer-Encoding smuggles a second request to the receiver, a Host picks another
#: virtual host behind the same address) or describe the body OpenCTS signs. Refused when subscribing,
#: dropped when sending (rows stored before this list grew).
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "content-type",
        "content-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "upgrade",
        "expect",
    }
)


def settable_header(name: str) -> bool:
    """Whether a subscription may send ``name``: not reserved above and not in SMN's ``x-smn`` space."""
    lowered = name.lower()
    return lowered not in RESERVED_HEADERS and not lowered.startswith("x-smn")


def _utf8_max(limit: int, *, one_line: bool = False) -> Any:
    """Limit a string in UTF-8 bytes (SMN counts bytes); ``one_line`` also refuses control characters,
    for values that end up in email headers."""

    def check(value: Any) -> Any:
        if one_line and isinstance(value, str) and _CONTROL.search(value):
            raise ValueError("must not contain line breaks or other control characters")
        if isinstance(value, str) and len(value.encode()) > limit:
            size = f"{limit // 1024} KB ({limit} bytes)" if limit % 1024 == 0 else f"{limit} bytes"
            raise ValueError(f"must be at most {size} of UTF-8")
        return value

    return BeforeValidator(check)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


class CreateTopic(_Body):
    name: str
    display_name: Annotated[str, _utf8_max(192, one_line=True)] = ""
    enterprise_project_id: str = Field("0", max_length=64)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _TOPIC_NAME.fullmatch(value):
            raise ValueError(
                "must be 1-255 characters of letters, digits, - and _, starting with a letter or digit"
            )
        return value


class UpdateTopic(_Body):
    display_name: Annotated[str, _utf8_max(192, one_line=True)]


class Extension(_Body):
    """A subscription's ``extension``: only ``header`` matters to our protocols; robot secrets are dropped."""

    header: dict[str, str] | None = None
    verification_code_enabled: bool | None = None

    @field_validator("header")
    @classmethod
    def _headers(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        if len(value) > 10:
            raise ValueError("at most 10 custom headers")
        for name, val in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid HTTP header name")
            if name.lower().startswith("x-smn"):
                raise ValueError(f"header {name!r}: names starting with x-smn are reserved")
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(
                    f"header {name!r} is set by OpenCTS for every request and cannot be overridden"
                )
            if _CONTROL.search(val) or len(val) > 1024:
                raise ValueError(f"header {name!r}: value has control characters or is too long")
        return value


class NewSubscription(_Body):
    protocol: str
    endpoint: str = Field(min_length=1, max_length=2048)
    remark: Annotated[str, _utf8_max(128)] = ""
    extension: Extension | None = None

    @model_validator(mode="after")
    def _endpoint_fits_protocol(self) -> NewSubscription:
        self.endpoint = normalise_endpoint(self.protocol, self.endpoint)
        return self


class AddSubscription(_Body):
    """One subscription (``protocol`` + ``endpoint``) or a batch of up to 50 in ``subscriptions``."""

    protocol: str | None = None
    endpoint: str | None = None
    remark: Annotated[str, _utf8_max(128)] = ""
    extension: Extension | None = None
    subscriptions: list[NewSubscription] | None = Field(None, max_length=50)

    def items(self) -> list[NewSubscription]:
        found = list(self.subscriptions or [])
        if self.protocol is not None or self.endpoint is not None:
            if not self.protocol or not self.endpoint:
                raise ValueError("protocol and endpoint are both required")
            one = NewSubscription(
                protocol=self.protocol, endpoint=self.endpoint, remark=self.remark, extension=self.extension
            )
            found.insert(0, one)
        if not found:
            raise ValueError("protocol and endpoint are required (or a list in subscriptions)")
        return found


class PublishMessage(_Body):
    subject: Annotated[str | None, _utf8_max(512, one_line=True)] = None
    message: Annotated[str | None, _utf8_max(MAX_MESSAGE_BYTES)] = None
    message_structure: Annotated[str | None, _utf8_max(MAX_MESSAGE_BYTES)] = None
    message_template_name: str | None = None
    tags: dict[str, str] | None = None
    time_to_live: str | StrictInt | None = None
    locale: str | None = None

    @field_validator("message_structure")
    @classmethod
    def _structure(cls, value: str | None) -> str | None:
        if value is not None:
            parse_structure(value)
        return value

    @field_validator("time_to_live")
    @classmethod
    def _ttl(cls, value: str | int | None) -> str | int | None:
        if value is None:
            return None
        text = str(value).strip()
        if not text.isdigit() or not 0 < int(text) <= MAX_TTL_SECONDS:
            raise ValueError(f"must be a whole number of seconds from 1 to {MAX_TTL_SECONDS}, as a string")
        return text

    @model_validator(mode="after")
    def _something_to_send(self) -> PublishMessage:
        if self.message is None and self.message_structure is None:
            if self.message_template_name:
                raise ValueError("message templates are not supported; send message or message_structure")
            raise ValueError("give message or message_structure")
        return self

    @property
    def ttl_seconds(self) -> int:
        return int(self.time_to_live) if self.time_to_live is not None else DEFAULT_TTL_SECONDS


def parse_structure(text: str) -> dict[str, str]:
    """``message_structure``: a JSON object of per-protocol texts that must have a ``default``."""
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ValueError("message_structure must be a JSON object encoded as a string") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("default"), str):
        raise ValueError('message_structure must be a JSON object with a string "default" key')
    bad = [k for k, v in doc.items() if not isinstance(v, str)]
    if bad:
        raise ValueError(f"message_structure values must be strings: {', '.join(sorted(bad))}")
    return {str(k): v for k, v in doc.items()}


def text_for(protocol: str, message: str | None, structure: str | None) -> str:
    """The text a subscriber of ``protocol`` gets: its own entry of message_structure, else default."""
    if structure is not None:
        texts = parse_structure(structure)
        return texts.get(protocol, texts["default"])
    return message or ""


def check_protocol(protocol: str) -> str:
    if protocol in PROTOCOLS:
        return protocol
    what = "is not supported by OpenCTS" if protocol in SMN_PROTOCOLS else "is not an SMN protocol"
    raise ValueError(f"protocol {protocol!r} {what}; supported: {', '.join(PROTOCOLS)}")


def normalise_endpoint(protocol: str, endpoint: str) -> str:
    """Check ``endpoint`` against its protocol's form and return it tidied (phone numbers lose spaces)."""
    check_protocol(protocol)
    value = endpoint.strip()
    if protocol == "email":
        if len(value) > 254 or not _EMAIL.fullmatch(value):
            raise ValueError(f"email endpoint {value!r} is not an email address")
        return value
    if protocol == "sms":
        number = re.sub(r"[\s().-]", "", value)
        if not _PHONE.fullmatch(number):
            raise ValueError(f"sms endpoint {value!r} is not a phone number (E.164, e.g. +8613800000000)")
        return number
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError(f"{protocol} endpoint {value!r} is not a valid URL") from None
    if parts.scheme.lower() != protocol or not parts.hostname:
        raise ValueError(f"{protocol} endpoint must be a {protocol}:// URL with a host")
    if _CONTROL.search(value) or " " in value or port == 0:
        raise ValueError(f"{protocol} endpoint {value!r} is not a valid URL")
    return value
