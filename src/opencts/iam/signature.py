"""``SDK-HMAC-SHA256``: the request signature the official Huawei Cloud SDKs put on every call.

OpenCTS must accept requests from the unmodified SDK, so this module repeats, byte for byte, what
``huaweicloudsdkcore.signer.signer.Signer.sign`` does (wire reference §1.3). The server side rebuilds the
canonical request from what actually arrived and compares signatures in constant time. Our own clients
sign with :func:`authorization`, built from the same functions (``opencts.client.signing``: ``sign_headers``,
``HmacAuth``), so the CLI goes through the same check as everybody else.

Everything here is a pure function of its inputs (no clock reads, no framework or HTTP client imports) so
the API layer decides how to look up secrets and which clock to trust.

Conventions for callers on the server:

* ``path`` is the **raw** request path as sent (ASGI ``scope["raw_path"]``, without the query), not the
  decoded one: the algorithm decodes once itself, and decoding twice would turn ``%2541`` into ``A``.
* ``query_string`` is the raw query string (ASGI ``scope["query_string"]``), without the ``?``.
* ``headers`` values are what the HTTP server hands over, i.e. the wire bytes decoded as latin-1. The SDK
  signs the UTF-8 text and sends its UTF-8 bytes, so non-ASCII values are re-decoded before signing.
* ``body`` is the raw body bytes received; never a re-serialisation.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import quote, unquote

__all__ = [
    "ALGORITHM",
    "DATE_HEADER",
    "DATE_FORMAT",
    "EMPTY_SHA256",
    "UNSIGNED_PAYLOAD",
    "authorization",
    "ParsedAuthorization",
    "SignatureError",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "check_clock_skew",
    "parse_authorization",
    "parse_sdk_date",
    "signature",
    "string_to_sign",
    "verify",
]

ALGORITHM = "SDK-HMAC-SHA256"
#: SHA-256 of zero bytes: the payload hash the SDK uses whenever the body is empty or absent.
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
#: The only ``X-Sdk-Content-Sha256`` value the SDK ever sends (for non-JSON, non-BSON bodies).
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

#: the header that carries the signing time; it must be signed
DATE_HEADER = "x-sdk-date"
_CONTENT_SHA_HEADER = "x-sdk-content-sha256"
_REQUIRED_SIGNED = ("host", DATE_HEADER)
_SIGNATURE_HEX_LEN = 64

# Characters RFC 3986 leaves unencoded (what ``quote(s, safe="~")`` keeps). A string made only of these is
# its own canonical form, which lets the common case skip urllib.parse entirely.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_.~/-]*")
# One ``name=value`` query item with nothing to decode or encode (at most one '=': ``a==b`` needs ``a=%3Db``).
_PLAIN_PAIR = re.compile(r"[A-Za-z0-9_.~-]*(?:=[A-Za-z0-9_.~-]*)?")
_CACHED_ITEM_MAX = 256
_DATE_RE = re.compile(r"\s*([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z\s*", re.ASCII)
_HEX64 = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)
_NO_SPACE = re.compile(r"\S+")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+", re.ASCII)
# Exactly what the SDK emits; anything else still parses, through the slower tolerant path.
_FAST_AUTH = re.compile(
    r"SDK-HMAC-SHA256 Access=([^\s,=]+), "
    r"SignedHeaders=([a-z0-9-]+(?:;[a-z0-9-]+)*), "
    r"Signature=([0-9a-f]{64})",
    re.ASCII,
)
_AUTH_FIELDS = ("Access", "SignedHeaders", "Signature")


class SignatureError(Exception):
    """A request's signature could not be parsed or checked.

    One type for every failure, so the API layer maps them all to a single 401 and cannot leak *which*
    check failed through different status codes. Messages say what was expected and what was found, to
    make a client's mistake diagnosable, but never carry the secret key or the signature we computed:
    echoing the expected signature would let anyone forge the request they just sent.
    """


@dataclass(frozen=True, slots=True)
class ParsedAuthorization:
    """The three fields of ``Authorization: SDK-HMAC-SHA256 Access=..., SignedHeaders=..., Signature=...``.

    ``signed_headers`` are lower-case and kept in the client's order, because that order is part of the
    signed text. ``signature`` is lower-case hex.
    """

    access_key: str
    signed_headers: tuple[str, ...]
    signature: str


def _preview(value: str, limit: int = 40) -> str:
    """Quote attacker-supplied text for an error message without letting it bloat logs."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + "..."


def parse_authorization(value: str) -> ParsedAuthorization:
    """Split the ``Authorization`` header into its fields.

    The SDK always writes ``", "`` between fields, which the precompiled fast path matches in one step;
    other clients (curl scripts, proxies that fold whitespace) go through a tolerant parser that accepts any
    whitespace around the commas and ``=`` signs but still rejects unknown, repeated or missing fields.
    """
    fast = _FAST_AUTH.fullmatch(value)
    if fast is not None:
        return ParsedAuthorization(fast[1], tuple(fast[2].split(";")), fast[3])
    fields = _fields(_after_algorithm(value))

    access_key = fields["Access"]
    if _NO_SPACE.fullmatch(access_key) is None:
        raise SignatureError(f"expected an access key without whitespace, found {_preview(access_key)}")

    names = tuple(name.strip().lower() for name in fields["SignedHeaders"].split(";"))
    if not all(_HEADER_NAME.fullmatch(name) for name in names):
        raise SignatureError(
            f"expected ';'-separated header names in SignedHeaders, found {_preview(fields['SignedHeaders'])}"
        )

    sig = fields["Signature"]
    if _HEX64.fullmatch(sig) is None:
        raise SignatureError(
            f"expected Signature to be {_SIGNATURE_HEX_LEN} hex digits, found {len(sig)} characters"
            + ("" if len(sig) != _SIGNATURE_HEX_LEN else " that are not all hex digits")
        )
    return ParsedAuthorization(access_key, names, sig.lower())


def _after_algorithm(value: str) -> str:
    """What follows ``SDK-HMAC-SHA256`` in the header: the fields."""
    head = value.strip().split(None, 1)
    if not head:
        raise SignatureError(
            f"expected an Authorization header starting with {ALGORITHM!r}, found an empty one"
        )
    if head[0] != ALGORITHM:
        raise SignatureError(f"expected algorithm {ALGORITHM!r}, found {_preview(head[0])}")
    if len(head) == 1:
        raise SignatureError(f"expected 'Access=..., SignedHeaders=..., Signature=...' after {ALGORITHM!r}")
    return head[1]


def _fields(text: str) -> dict[str, str]:
    """``Access``, ``SignedHeaders`` and ``Signature``, each exactly once and not empty, and nothing else."""
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, eq, field_value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise SignatureError(f"expected 'name=value' in the Authorization header, found {_preview(item)}")
        if key not in _AUTH_FIELDS:
            raise SignatureError(f"expected one of {', '.join(_AUTH_FIELDS)}; found field {_preview(key)}")
        if key in fields:
            raise SignatureError(f"expected {key} once in the Authorization header, found it twice")
        fields[key] = field_value.strip()
    missing = [name for name in _AUTH_FIELDS if not fields.get(name)]
    if missing:
        raise SignatureError(f"expected {', '.join(_AUTH_FIELDS)}; missing or empty: {', '.join(missing)}")
    return fields


def _encode(part: str) -> str:
    """RFC 3986 encoding as the SDK does it (``quote(s, safe="~")``, UTF-8, upper-case hex)."""
    return part if _UNRESERVED.fullmatch(part) is not None else quote(part, safe="~")


def canonical_uri(path: str) -> str:
    """Step 3: decode the path once, re-encode each segment, and always end with ``/``.

    The trailing slash is not in the real URL; the SDK adds it and so must we. Because decoding happens
    before splitting, an encoded ``%2F`` inside a path parameter becomes a segment separator, exactly as in
    the SDK. Pass the raw path: a path already made only of unreserved characters and ``/`` is its own
    canonical form, which is the common case and skips urllib entirely.
    """
    if _PLAIN_PATH.fullmatch(path) is None:
        path = "/".join(_encode(segment) for segment in unquote(path).split("/"))
    if not path.endswith("/"):
        path += "/"
    return path


def _decode_query_part(part: str) -> str:
    # Same as urllib.parse.parse_qsl: '+' means space, then percent-decode as UTF-8 (errors='replace').
    if "%" in part or "+" in part:
        return unquote(part.replace("+", " "))
    return part


@lru_cache(maxsize=4096)
def _encoded_pair(item: str) -> tuple[str, str, str]:
    """(decoded name, decoded value, canonical ``name=value``) for one ``&``-separated item.

    Cached because unquote/quote are the slow part of canonicalising and the same encoded items
    (``resource_name=My%20Res``, ``notification_id=n1%2Cn2``) recur across requests. Only short items are
    cached (see the caller), so an attacker cannot make the cache hold much.
    """
    name, _, value = item.partition("=")
    name = _decode_query_part(name)
    value = _decode_query_part(value)
    return name, value, f"{_encode(name)}={_encode(value)}"


def canonical_query(query_string: str) -> str:
    """Step 4: the sorted, RFC 3986-encoded ``name=value&...`` form of a raw query string.

    Equivalent to ``parse_qsl(query_string, keep_blank_values=True)``, sorting the decoded pairs by name and
    then value, and encoding both with ``quote(..., safe="~")``, but written out by hand because this runs
    on every request. The result is idempotent: the canonical form parses back to itself, which is why a
    client may send it as the URL query (the SDK does).
    """
    if not query_string:
        return ""
    pairs: list[tuple[str, str, str]] = []
    for item in query_string.split("&"):
        if not item:
            continue
        if _PLAIN_PAIR.fullmatch(item) is not None:  # nothing to decode or encode: the common case
            name, eq, value = item.partition("=")
            pairs.append((name, value, item if eq else item + "="))
        elif len(item) <= _CACHED_ITEM_MAX:
            pairs.append(_encoded_pair(item))
        else:
            pairs.append(_encoded_pair.__wrapped__(item))
    if len(pairs) > 1:
        pairs.sort()
    return "&".join([pair[2] for pair in pairs])


def _header_text(value: str) -> str:
    """Undo the latin-1 view of a UTF-8 header value, and strip it, as the SDK signs stripped UTF-8 text."""
    if not value.isascii():
        try:
            value = value.encode("latin-1").decode("utf-8")
        except UnicodeError:
            pass  # not UTF-8 on the wire: use it as it came; the SDK never sends such a value
    return value.strip()


def _signed_header_values(headers: Mapping[str, str], signed_headers: Sequence[str]) -> list[str]:
    """Look up every signed header case-insensitively, failing if the request does not carry one.

    Tries the names as given first (free for Starlette's case-insensitive ``Headers`` and for dicts with
    lower-case keys) and builds a lower-cased copy only when a lookup misses.
    """
    values: list[str] = []
    lowered: dict[str, str] | None = None
    for name in signed_headers:
        value = headers.get(name)
        if value is None:
            if lowered is None:
                lowered = {key.lower(): val for key, val in headers.items()}
            value = lowered.get(name.lower())
            if value is None:
                raise SignatureError(
                    f"expected header {name!r} (listed in SignedHeaders) in the request; not found"
                )
        values.append(_header_text(value))
    return values


def _content_sha(signed_headers: Sequence[str], values: Sequence[str]) -> str | None:
    """The ``X-Sdk-Content-Sha256`` value, but only if it is signed: an unsigned header is anyone's to set."""
    for name, value in zip(signed_headers, values, strict=True):
        if name == _CONTENT_SHA_HEADER:
            return value or None  # the SDK ignores an empty value and hashes the body
    return None


def _assemble(
    method: str,
    path: str,
    query_string: str,
    signed_headers: Sequence[str],
    values: Sequence[str],
    body: bytes,
) -> str:
    """Step 7, from header values already looked up: shared by the public builder, verify and signing."""
    canonical_headers = "".join(
        [f"{name}:{value}\n" for name, value in zip(signed_headers, values, strict=True)]
    )
    if not body:
        payload = EMPTY_SHA256
    else:
        payload = _content_sha(signed_headers, values) or hashlib.sha256(body).hexdigest()
    return "\n".join(
        (
            method.upper(),
            canonical_uri(path),
            canonical_query(query_string),
            canonical_headers,
            ";".join(signed_headers),
            payload,
        )
    )


def canonical_request(
    method: str,
    path: str,
    query_string: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    body: bytes,
) -> str:
    """Steps 3–7: the text whose hash gets signed.

    ``headers`` is looked up case-insensitively; a name in ``signed_headers`` that the request lacks raises
    :class:`SignatureError`. For a non-empty body a signed ``X-Sdk-Content-Sha256`` value replaces the body
    hash literally (step 6); :func:`verify` additionally refuses a literal hash that does not match the body.
    """
    values = _signed_header_values(headers, signed_headers)
    return _assemble(method, path, query_string, signed_headers, values, body)


def string_to_sign(sdk_date: str, canonical: str) -> str:
    """Step 8. The date is the ``X-Sdk-Date`` value; there is no scope (region, service) in this scheme."""
    return f"{ALGORITHM}\n{sdk_date}\n{hashlib.sha256(canonical.encode()).hexdigest()}"


def signature(secret_key: str, to_sign: str) -> str:
    """Step 9: lower-case hex HMAC-SHA256 keyed directly with the SK (no key derivation, unlike AWS)."""
    return hmac.digest(secret_key.encode(), to_sign.encode(), "sha256").hex()


def verify(
    *,
    method: str,
    path: str,
    query_string: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_key: str,
    parsed: ParsedAuthorization,
) -> bool:
    """Whether ``parsed.signature`` is the signature of this request under ``secret_key``.

    Returns False for a wrong signature (the normal "bad credentials" outcome) and raises
    :class:`SignatureError` when the request cannot be checked at all: ``host`` or ``x-sdk-date`` unsigned
    (without them a signature could be replayed against another server or at any time), or a signed header
    missing. It does not check the clock: call :func:`parse_sdk_date` and :func:`check_clock_skew`.
    """
    signed = parsed.signed_headers
    for required in _REQUIRED_SIGNED:
        if required not in signed:
            raise SignatureError(
                f"expected {required!r} in SignedHeaders, found {_preview(';'.join(signed), 200)}"
            )
    values = _signed_header_values(headers, signed)
    if body:
        literal = _content_sha(signed, values)
        # The SDK only ever sends UNSIGNED-PAYLOAD here. A literal hash is taken on trust by the algorithm, so
        # a body that does not match it has been swapped after signing.
        if literal is not None and literal != UNSIGNED_PAYLOAD:
            if literal.lower() != hashlib.sha256(body).hexdigest():
                return False
    canonical = _assemble(method, path, query_string, signed, values, body)
    expected = signature(secret_key, string_to_sign(values[signed.index(DATE_HEADER)], canonical))
    return hmac.compare_digest(expected, parsed.signature)


def parse_sdk_date(value: str) -> int:
    """``X-Sdk-Date`` (``20261123T143504Z``, always UTC) as milliseconds since the epoch.

    Hand-rolled rather than ``strptime``, which is slower and would be the most expensive step of a
    verification.
    """
    match = _DATE_RE.fullmatch(value)
    if match is not None:
        year, month, day, hour, minute, second = (int(group) for group in match.groups())
        try:
            moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except ValueError:
            pass
        else:
            return int(moment.timestamp()) * 1000
    raise SignatureError(f"expected X-Sdk-Date in the UTC form 20261123T143504Z, found {_preview(value)}")


def check_clock_skew(sdk_date_ms: int, now_ms: int, skew_ms: int = 900_000) -> None:
    """Refuse a signature dated more than ``skew_ms`` away from our clock, which bounds replay of a captured
    request. 15 minutes is the figure usually given for Huawei's API gateway."""
    drift = sdk_date_ms - now_ms
    if abs(drift) > skew_ms:
        direction = "ahead of" if drift > 0 else "behind"
        raise SignatureError(
            f"expected X-Sdk-Date within {skew_ms // 1000} s of the server clock, "
            f"found it {abs(drift) // 1000} s {direction}"
        )


def authorization(
    *,
    method: str,
    path: str,
    query_string: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    body: bytes,
    access_key: str,
    secret_key: str,
) -> str:
    """The ``Authorization`` value a client sends: computed with the very functions :func:`verify` uses, so
    a client signing with it goes through the same check as the SDK."""
    values = _signed_header_values(headers, signed_headers)
    canonical = _assemble(method, path, query_string, signed_headers, values, body)
    sdk_date = values[list(signed_headers).index(DATE_HEADER)]
    sig = signature(secret_key, string_to_sign(sdk_date, canonical))
    return f"{ALGORITHM} Access={access_key}, SignedHeaders={';'.join(signed_headers)}, Signature={sig}"
