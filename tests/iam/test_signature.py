"""SDK-HMAC-SHA256: the spec's captured vectors, a cross-check against the real SDK signer, and our client.

The SDK cases go through ``huaweicloudsdkcore``'s own ``Signer`` and then ``requests``' request preparation,
so what the verifier sees is what would be on the wire, not what the SDK meant to send.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl, quote, unquote

import pytest
import requests
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from starlette.datastructures import Headers

from opencts.client.signing import HmacAuth, sign_headers
from opencts.iam.signature import (
    ALGORITHM,
    DATE_FORMAT,
    EMPTY_SHA256,
    ParsedAuthorization,
    SignatureError,
    canonical_query,
    canonical_request,
    canonical_uri,
    check_clock_skew,
    parse_authorization,
    parse_sdk_date,
    signature,
    string_to_sign,
    verify,
)

AK = "HPUAEXAMPLEACCESSKEY"
SK = "Zr9sK2m1TopSecretSecretKeyValue0123456789"
PID = "0123456789abcdef0123456789abcdef"
HOST = "127.0.0.1:8080"
DATE = "20261123T143504Z"
UA = (
    "huaweicloud-usdk-python/3.0; os/Linux##1_SMP_PREEMPT_DYNAMIC_@0#x86_64 python/3.11.7 impl/CPython; app/x"
)

# ------------------------------------------------------------------------------------------------------------
# The spec's test vector (wire reference §1.3 and §1.4)

SPEC_HEADERS = {
    "User-Agent": "huaweicloud-usdk-python/3.0; os/Linux##1_SMP_PREEMPT_DYNAMIC_@0#x86_64 python/3.11.7 "
    "impl/CPython; app/579e4eaa-26a0-4d14-b78d-2fad0b0c77fe",
    "Accept-Encoding": "gzip, deflate",
    "Accept": "*/*",
    "Connection": "keep-alive",
    "Content-Type": "application/json",
    "X-Project-Id": PID,
    "X-Sdk-Date": DATE,
    "Host": "127.0.0.1:18080",
}
SPEC_SIGNED = ("content-type", "host", "user-agent", "x-project-id", "x-sdk-date")
SPEC_CANONICAL = (
    "GET\n"
    f"/v3/{PID}/trackers/\n"
    "\n"
    "content-type:application/json\n"
    "host:127.0.0.1:18080\n"
    "user-agent:huaweicloud-usdk-python/3.0; os/Linux##1_SMP_PREEMPT_DYNAMIC_@0#x86_64 python/3.11.7 "
    "impl/CPython; app/579e4eaa-26a0-4d14-b78d-2fad0b0c77fe\n"
    f"x-project-id:{PID}\n"
    f"x-sdk-date:{DATE}\n"
    "\n"
    "content-type;host;user-agent;x-project-id;x-sdk-date\n"
    f"{EMPTY_SHA256}"
)
SPEC_LIST_TRACES_QUERY = (
    "from=1700000000000&limit=10&resource_name=My%20Res%2F1&to=1700003600000"
    "&trace_rating=normal&trace_type=system"
)


def spec_auth(sig: str) -> str:
    return f"SDK-HMAC-SHA256 Access=MYAK, SignedHeaders={';'.join(SPEC_SIGNED)}, Signature={sig}"


def test_spec_vector_canonical_request_hash_and_signature() -> None:
    canonical = canonical_request("GET", f"/v3/{PID}/trackers", "", SPEC_HEADERS, SPEC_SIGNED, b"")
    assert canonical == SPEC_CANONICAL
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    assert digest == "fab8d6695d2535337da4f0c33da9a8763e1dbb0383ca94ee75a721934f16ff76"
    to_sign = string_to_sign(DATE, canonical)
    assert to_sign == f"SDK-HMAC-SHA256\n{DATE}\n{digest}"
    assert signature("MYSK", to_sign) == "502bbf277a411c34e2ac540a46746405f4232840133703fcbb4260c76a995f84"


@pytest.mark.parametrize(
    ("path", "query", "sig"),
    [
        (f"/v3/{PID}/trackers", "", "502bbf277a411c34e2ac540a46746405f4232840133703fcbb4260c76a995f84"),
        (
            f"/v3/{PID}/traces",
            SPEC_LIST_TRACES_QUERY,
            "337986dd7a3c43bc03956a75a325f710fa92a180e08866c407622a1ccc80964e",
        ),
    ],
)
def test_spec_captured_requests_verify(path: str, query: str, sig: str) -> None:
    parsed = parse_authorization(spec_auth(sig))
    assert parsed == ParsedAuthorization("MYAK", SPEC_SIGNED, sig)
    ok = verify(
        method="GET",
        path=path,
        query_string=query,
        headers=SPEC_HEADERS,
        body=b"",
        secret_key="MYSK",
        parsed=parsed,
    )
    assert ok
    assert not verify(
        method="GET",
        path=path,
        query_string=query,
        headers=SPEC_HEADERS,
        body=b"",
        secret_key="MYSk",
        parsed=parsed,
    )


def test_spec_vector_through_sign_headers() -> None:
    given = {k: v for k, v in SPEC_HEADERS.items() if k not in {"Accept-Encoding", "Accept", "Connection"}}
    out = sign_headers(
        method="GET",
        url=f"http://127.0.0.1:18080/v3/{PID}/traces?{SPEC_LIST_TRACES_QUERY}",
        headers=given,
        body=b"",
        access_key="MYAK",
        secret_key="MYSK",
    )
    assert out["Authorization"] == spec_auth(
        "337986dd7a3c43bc03956a75a325f710fa92a180e08866c407622a1ccc80964e"
    )


# ------------------------------------------------------------------------------------------------------------
# Canonical pieces


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"/v3/{PID}/traces", f"/v3/{PID}/traces/"),
        ("/", "/"),
        ("", "/"),
        ("/v3/p/trackers/", "/v3/p/trackers/"),
        ("/v2/p/topics/urn%3Asmn%3Acn-north-4%3Ap%3At", "/v2/p/topics/urn%3Asmn%3Acn-north-4%3Ap%3At/"),
        ("/a/b%2Fc", "/a/b/c/"),  # decoded before splitting, as in the SDK
        ("/a/%7e%2d", "/a/~-/"),
        ("/a/%e4%b8%ad", "/a/%E4%B8%AD/"),
        ("/a/%2541", "/a/%2541/"),
        ("/a b/c+d", "/a%20b/c%2Bd/"),
    ],
)
def test_canonical_uri(path: str, expected: str) -> None:
    assert canonical_uri(path) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ""),
        ("b=2&a=1", "a=1&b=2"),
        ("a=2&a=10&a=1", "a=1&a=10&a=2"),
        ("flag&x=", "flag=&x="),
        ("&&a=1&", "a=1"),
        ("q=My+Res%2F1", "q=My%20Res%2F1"),
        ("q=a%2bb", "q=a%2Bb"),
        ("n=%E5%90%8D&m=~*'()", "m=~%2A%27%28%29&n=%E5%90%8D"),
        ("notification_id=n1%2Cn2", "notification_id=n1%2Cn2"),
        ("a==b", "a=%3Db"),
    ],
)
def test_canonical_query(query: str, expected: str) -> None:
    assert canonical_query(query) == expected
    assert canonical_query(expected) == expected  # idempotent: the canonical form can be sent as the query


def _reference_query(query: str) -> str:
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    return "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in pairs)


def test_canonical_query_and_uri_match_urllib_reference_on_random_input() -> None:
    rng = random.Random(20261123)
    # the last two exercise the fast paths (nothing to decode or encode but '=' and '&')
    for alphabet, hex_rate in (
        ("aZ09-_.~ /%+&=?#:;,@!$'()*[]éü名\t", 0.2),
        ("ab=&%+", 0.2),
        ("ab9-_.~=&", 0.0),
    ):
        _compare_with_reference(rng, alphabet, hex_rate)


def _compare_with_reference(rng: random.Random, alphabet: str, hex_rate: float) -> None:
    hexes = ["%2F", "%2f", "%20", "%25", "%3A", "%E5%90%8D", "%zz", "%4", "%C3"]
    for _ in range(3000):
        chunks = [
            rng.choice(hexes) if rng.random() < hex_rate else rng.choice(alphabet)
            for _ in range(rng.randint(0, 24))
        ]
        text = "".join(chunks)
        assert canonical_query(text) == _reference_query(text), text
        path = "/" + text.replace("?", "").replace("#", "")
        sdk_like = "/".join(quote(seg, safe="~") for seg in unquote(path).split("/"))
        assert canonical_uri(path) == (sdk_like if sdk_like.endswith("/") else sdk_like + "/"), path


# ------------------------------------------------------------------------------------------------------------
# Parsing the Authorization header

GOOD_SIG = "0123456789abcdef" * 4


def test_parse_authorization_fast_and_tolerant_forms_agree() -> None:
    expected = ParsedAuthorization(AK, ("host", "x-sdk-date"), GOOD_SIG)
    assert parse_authorization(
        f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=host;x-sdk-date, Signature={GOOD_SIG}"
    ) == (expected)
    loose = (
        f"  SDK-HMAC-SHA256   Access = {AK} ,SignedHeaders=Host; X-Sdk-Date ,\tSignature={GOOD_SIG.upper()}  "
    )
    assert parse_authorization(loose) == expected
    reordered = f"SDK-HMAC-SHA256 Signature={GOOD_SIG},Access={AK},SignedHeaders=host;x-sdk-date"
    assert parse_authorization(reordered) == expected


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("", "found an empty one"),
        ("   ", "found an empty one"),
        (
            f"SDK-HMAC-SM3 Access=AK, SignedHeaders=host, Signature={GOOD_SIG}",
            "expected algorithm 'SDK-HMAC-SHA256'",
        ),
        (f"Bearer {GOOD_SIG}", "expected algorithm 'SDK-HMAC-SHA256', found 'Bearer'"),
        ("SDK-HMAC-SHA256", "expected 'Access=..., SignedHeaders=..., Signature=...'"),
        ("SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date", "missing or empty: Signature"),
        (f"SDK-HMAC-SHA256 SignedHeaders=host, Signature={GOOD_SIG}", "missing or empty: Access"),
        (
            f"SDK-HMAC-SHA256 Access=, SignedHeaders=, Signature={GOOD_SIG}",
            "missing or empty: Access, SignedHeaders",
        ),
        ("SDK-HMAC-SHA256 Access=AK, SignedHeaders=host, Signature=xyz", "64 hex digits, found 3 characters"),
        (f"SDK-HMAC-SHA256 Access=AK, SignedHeaders=host, Signature={'g' * 64}", "not all hex digits"),
        (f"SDK-HMAC-SHA256 Access=AK, SignedHeaders=host, Signature={GOOD_SIG}0", "found 65 characters"),
        (f"SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;;x-sdk-date, Signature={GOOD_SIG}", "header names"),
        (f"SDK-HMAC-SHA256 Access=AK, SignedHeaders=ho st, Signature={GOOD_SIG}", "header names"),
        (f"SDK-HMAC-SHA256 Access=A K, SignedHeaders=host, Signature={GOOD_SIG}", "without whitespace"),
        (f"SDK-HMAC-SHA256 Access=AK, Access=AK, SignedHeaders=host, Signature={GOOD_SIG}", "found it twice"),
        (
            f"SDK-HMAC-SHA256 Access=AK, Region=x, SignedHeaders=host, Signature={GOOD_SIG}",
            "found field 'Region'",
        ),
        (
            f"SDK-HMAC-SHA256 Access=AK SignedHeaders=host Signature={GOOD_SIG}",
            "missing or empty: SignedHeaders, Sig",
        ),
        (f"SDK-HMAC-SHA256 Access=AK,, Signature={GOOD_SIG}", "expected 'name=value'"),
    ],
)
def test_parse_authorization_rejects_malformed(value: str, match: str) -> None:
    with pytest.raises(SignatureError, match=match):
        parse_authorization(value)


# ------------------------------------------------------------------------------------------------------------
# Dates and clock skew


def test_parse_sdk_date() -> None:
    expected = int(datetime(2026, 11, 23, 14, 35, 4, tzinfo=UTC).timestamp()) * 1000
    assert parse_sdk_date(DATE) == expected
    assert parse_sdk_date(f" {DATE} ") == expected
    moment = datetime.now(UTC).replace(microsecond=0)
    assert parse_sdk_date(moment.strftime(DATE_FORMAT)) == int(moment.timestamp()) * 1000


@pytest.mark.parametrize(
    "value",
    [
        "",
        "20261323T143504Z",
        "20260230T000000Z",
        "20261123T246000Z",
        "2026-11-23T14:35:04Z",
        "20261123T143504",
        "20261123t143504z",
        "２０２６1123T143504Z",
        "20261123T143504Z" + "0" * 100,
    ],
)
def test_parse_sdk_date_rejects(value: str) -> None:
    with pytest.raises(SignatureError, match="expected X-Sdk-Date in the UTC form 20261123T143504Z") as info:
        parse_sdk_date(value)
    assert len(str(info.value)) < 150


def test_check_clock_skew() -> None:
    now = 1_800_000_000_000
    check_clock_skew(now, now)
    check_clock_skew(now + 900_000, now)
    check_clock_skew(now - 900_000, now)
    check_clock_skew(now + 5_000, now, skew_ms=5_000)
    with pytest.raises(SignatureError, match="within 900 s of the server clock, found it 901 s ahead of"):
        check_clock_skew(now + 901_000, now)
    with pytest.raises(SignatureError, match="found it 3600 s behind"):
        check_clock_skew(now - 3_600_000, now)
    with pytest.raises(SignatureError, match="within 5 s"):
        check_clock_skew(now + 5_001, now, skew_ms=5_000)


# ------------------------------------------------------------------------------------------------------------
# Cross-check against the real SDK signer


@dataclass(frozen=True)
class Wire:
    """One request as the server receives it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def check(self, secret_key: str = SK) -> bool:
        parsed = parse_authorization(self.headers["Authorization"])
        return verify(
            method=self.method,
            path=self.path,
            query_string=self.query,
            headers=self.headers,
            body=self.body,
            secret_key=secret_key,
            parsed=parsed,
        )

    def signed(self) -> tuple[str, ...]:
        return parse_authorization(self.headers["Authorization"]).signed_headers

    def with_header(self, name: str, value: str) -> Wire:
        headers = {k: v for k, v in self.headers.items() if k.lower() != name}
        headers[name] = value
        return replace(self, headers=headers)

    def header(self, name: str) -> str:
        return next(v for k, v in self.headers.items() if k.lower() == name)


def sdk_wire(
    method: str,
    resource_path: str,
    query: list[tuple[str, object]] | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | str | None = None,
) -> Wire:
    """Sign with the SDK's own Signer, then let ``requests`` prepare the request as the SDK's client does."""
    request = SdkRequest(
        method=method,
        schema="http",
        host=HOST,
        resource_path=resource_path,
        query_params=query or [],
        header_params=dict(headers or {}),
        body=body,
    )
    Signer(BasicCredentials(AK, SK, PID)).sign(request)
    prepared = requests.Request(
        method, request.url, headers=request.header_params, data=request.body
    ).prepare()
    path_url = str(prepared.path_url)
    path, _, query_string = path_url.partition("?")
    raw_body = prepared.body
    sent = raw_body if isinstance(raw_body, bytes) else str(raw_body or "").encode()
    return Wire(method, path, query_string, {str(k): str(v) for k, v in prepared.headers.items()}, sent)


JSON = "application/json"
JSON_UTF8 = "application/json;charset=utf-8"


def base_headers(content_type: str | None = JSON, **extra: str) -> dict[str, str]:
    headers = {"User-Agent": UA, "X-Project-Id": PID, "X-Sdk-Date": DATE}
    if content_type is not None:
        headers["Content-Type"] = content_type
    headers.update(extra)
    return headers


TRACKER_BODY = (
    '{"tracker_type": "system", "tracker_name": "system", '
    '"management_event_selector": {"exclude_service": ["KMS"]}, '
    '"is_lts_enabled": true, "obs_info": {"bucket_name": "my-bucket", "file_prefix_name": "cts", '
    '"is_obs_created": false}, "is_support_validate": true}'
)
URN = "urn:smn:cn-north-4:" + PID + ":cts_topic"

SDK_CASES: dict[str, Callable[[], Wire]] = {
    "get-query-spaces-slashes": lambda: sdk_wire(
        "GET",
        f"/v3/{PID}/traces",
        [
            ("trace_type", "system"),
            ("limit", 10),
            ("from", 1700000000000),
            ("resource_name", "My Res/1 +x&y=z"),
            ("user", "名字 ~*"),
            ("read_only", True),
            ("next", ""),
        ],
        base_headers(),
    ),
    "get-spec-list-traces": lambda: sdk_wire(
        "GET",
        f"/v3/{PID}/traces",
        [("trace_type", "system"), ("resource_name", "My Res/1"), ("limit", 10)],
        base_headers(),
    ),
    "post-json-body": lambda: sdk_wire(
        "POST", f"/v3/{PID}/tracker", None, base_headers(JSON_UTF8), TRACKER_BODY
    ),
    "put-non-ascii-body": lambda: sdk_wire(
        "PUT", f"/v3/{PID}/tracker", None, base_headers(JSON_UTF8), '{"tracker_name": "système ✓"}'
    ),
    "delete-with-body": lambda: sdk_wire(
        "DELETE",
        f"/v3/{PID}/cts-tracker/t1/tags/delete",
        None,
        base_headers(JSON_UTF8),
        b'{"tags": [{"key": "k1", "value": "v1"}]}',
    ),
    "delete-query-no-body": lambda: sdk_wire(
        "DELETE", f"/v3/{PID}/notifications", [("notification_id", "n1,n2")], base_headers()
    ),
    "urn-path-parameter": lambda: sdk_wire(
        "GET",
        f"/v2/{PID}/notifications/topics/{quote(URN, safe='')}/subscriptions",
        [("limit", 100)],
        base_headers(),
    ),
    "odd-path-parameter": lambda: sdk_wire(
        "GET", f"/v3/{PID}/trackers/{quote('a/b %41 名', safe='')}/x", None, base_headers()
    ),
    "no-content-type-security-token": lambda: sdk_wire(
        "GET",
        f"/v3/{PID}/quotas",
        None,
        base_headers(None, **{"X-Security-Token": "gQpjbi1ub3J0aC00" + "A" * 200}),
    ),
    "iam-lookup-sdk-date-generated": lambda: sdk_wire(
        "GET", "/v3/projects", [("name", "cn-north-4")], {"User-Agent": "python/3.11.7 impl/CPython"}
    ),
    "non-ascii-header-value": lambda: sdk_wire(
        "GET", f"/v3/{PID}/trackers", None, base_headers(**{"X-Client-Name": "  José — 名字  "})
    ),
    "underscore-header-unsigned": lambda: sdk_wire(
        "GET", f"/v3/{PID}/trackers", None, base_headers(**{"X_Custom_Thing": "not signed"})
    ),
    "domain-path": lambda: sdk_wire("GET", "/v3/dom123/resources", None, base_headers(), None),
}


@pytest.fixture(params=sorted(SDK_CASES))
def sdk_case(request: pytest.FixtureRequest) -> Wire:
    return SDK_CASES[str(request.param)]()


def test_sdk_signed_request_verifies(sdk_case: Wire) -> None:
    assert sdk_case.check()
    assert {"host", "x-sdk-date"} <= set(sdk_case.signed())
    assert all("_" not in name for name in sdk_case.signed())


def test_sdk_signed_request_verifies_through_starlette_headers(sdk_case: Wire) -> None:
    """As a real server sees it: lower-cased names, values decoded from the wire as latin-1."""
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in sdk_case.headers.items()]
    headers = Headers(raw=raw)
    parsed = parse_authorization(headers["authorization"])
    assert verify(
        method=sdk_case.method,
        path=sdk_case.path,
        query_string=sdk_case.query,
        headers=headers,
        body=sdk_case.body,
        secret_key=SK,
        parsed=parsed,
    )


def _tampered(case: Wire) -> dict[str, Wire]:
    out: dict[str, Wire] = {}
    if case.body:
        flipped = bytes([case.body[0] ^ 0x01]) + case.body[1:]
        out["body byte"] = replace(case, body=flipped)
        out["body appended"] = replace(case, body=case.body + b" ")
    else:
        out["body added"] = replace(case, body=b"{}")
    out["path"] = replace(case, path=case.path[:-1] + ("x" if case.path[-1] != "x" else "y"))
    out["path segment"] = replace(case, path=case.path.replace("/v3/", "/v4/", 1).replace("/v2/", "/v4/", 1))
    out["query added"] = replace(case, query=case.query + ("&" if case.query else "") + "extra=1")
    if case.query:
        out["query dropped"] = replace(case, query=case.query.split("&", 1)[1] if "&" in case.query else "")
        out["query value"] = replace(case, query=case.query.replace("=", "=0", 1))
    out["method"] = replace(case, method="POST" if case.method != "POST" else "PUT")
    date = datetime.strptime(case.header("x-sdk-date"), DATE_FORMAT) + timedelta(seconds=1)
    out["date"] = case.with_header("X-Sdk-Date", date.strftime(DATE_FORMAT))
    for name in case.signed():
        out[f"header {name}"] = case.with_header(name, case.header(name) + "x")
    return out


def test_sdk_signed_request_rejected_after_tampering(sdk_case: Wire) -> None:
    tampered = _tampered(sdk_case)
    assert tampered["path"].path != sdk_case.path
    for what, case in tampered.items():
        if case == sdk_case:
            continue  # e.g. no /v3/ in the path to swap
        assert not case.check(), f"accepted after tampering with the {what}"
    assert not sdk_case.check(SK[:-1])
    assert not sdk_case.check(SK + "x")
    assert not sdk_case.check("")


def test_sdk_and_sign_headers_produce_the_same_authorization(sdk_case: Wire) -> None:
    given = {
        k: v
        for k, v in sdk_case.headers.items()
        if k.lower() not in {"authorization", "accept", "accept-encoding", "connection", "content-length"}
    }
    # sign_headers takes text; the SDK's prepared headers hold the latin-1 view of UTF-8 bytes
    text = {k: v.encode("latin-1").decode("utf-8") for k, v in given.items()}
    url = f"http://{HOST}{sdk_case.path}" + (f"?{sdk_case.query}" if sdk_case.query else "")
    ours = sign_headers(
        method=sdk_case.method, url=url, headers=text, body=sdk_case.body, access_key=AK, secret_key=SK
    )
    assert ours["Authorization"] == sdk_case.headers["Authorization"]
    assert {k: v for k, v in ours.items() if k != "Authorization"} == {k: v.strip() for k, v in given.items()}


def test_unsigned_payload_is_honoured_only_when_signed() -> None:
    # The SDK adds X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD for non-JSON bodies; the body is then not protected.
    case = sdk_wire(
        "POST", f"/v3/{PID}/upload", None, base_headers("application/octet-stream"), b"\x00\x01binary"
    )
    assert case.header("x-sdk-content-sha256") == "UNSIGNED-PAYLOAD"
    assert "x-sdk-content-sha256" in case.signed()
    assert case.check()
    assert replace(case, body=b"other").check()  # by design of the protocol
    assert not replace(case, body=b"").check()  # an empty body always hashes as EMPTY_SHA256

    # Unsigned, the header is ignored and the body hashed.
    signed = ("host", "x-sdk-date")
    headers = {"Host": HOST, "X-Sdk-Date": DATE, "X-Sdk-Content-Sha256": "UNSIGNED-PAYLOAD"}
    canonical = canonical_request("POST", "/x", "", headers, signed, b"abc")
    assert canonical.endswith(hashlib.sha256(b"abc").hexdigest())


def test_literal_payload_hash_must_match_body() -> None:
    body = b'{"a": 1}'
    good = hashlib.sha256(body).hexdigest()
    for literal, accepted in ((good, True), (good.upper(), True), (hashlib.sha256(b"x").hexdigest(), False)):
        headers = sign_headers(
            method="POST",
            url=f"http://{HOST}/v3/{PID}/tracker",
            headers={"Content-Type": JSON, "X-Sdk-Content-Sha256": literal},
            body=body,
            access_key=AK,
            secret_key=SK,
        )
        wire = Wire("POST", f"/v3/{PID}/tracker", "", headers, body)
        assert wire.check() is accepted, literal
        assert not replace(wire, body=b'{"a": 2}').check()


# ------------------------------------------------------------------------------------------------------------
# verify() refusals and error hygiene


def _signed_wire(signed_names: tuple[str, ...]) -> Wire:
    headers = {"Host": HOST, "X-Sdk-Date": DATE, "Content-Type": JSON}
    sig = signature(SK, string_to_sign(DATE, canonical_request("GET", "/p", "", headers, signed_names, b"")))
    headers["Authorization"] = (
        f"{ALGORITHM} Access={AK}, SignedHeaders={';'.join(signed_names)}, Signature={sig}"
    )
    return Wire("GET", "/p", "", headers, b"")


@pytest.mark.parametrize(
    ("signed_names", "match"),
    [
        (("content-type", "x-sdk-date"), "expected 'host' in SignedHeaders, found 'content-type;x-sdk-date'"),
        (("content-type", "host"), "expected 'x-sdk-date' in SignedHeaders"),
    ],
)
def test_verify_requires_host_and_date_signed(signed_names: tuple[str, ...], match: str) -> None:
    with pytest.raises(SignatureError, match=match):
        _signed_wire(signed_names).check()


def test_verify_rejects_missing_signed_header_without_leaking() -> None:
    wire = _signed_wire(("content-type", "host", "x-sdk-date"))
    assert wire.check()
    stripped = replace(wire, headers={k: v for k, v in wire.headers.items() if k != "Content-Type"})
    expected_sig = parse_authorization(wire.headers["Authorization"]).signature
    with pytest.raises(SignatureError, match="expected header 'content-type' .* not found") as info:
        stripped.check()
    assert SK not in str(info.value)
    assert expected_sig not in str(info.value)


def test_error_messages_never_contain_the_secret_or_expected_signature() -> None:
    wire = _signed_wire(("content-type", "host", "x-sdk-date"))
    good = parse_authorization(wire.headers["Authorization"])
    attempts: list[Callable[[], object]] = [
        lambda: parse_authorization(f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=host, Signature={SK}"),
        lambda: parse_authorization(
            f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders=host, Signature={good.signature}0"
        ),
        lambda: verify(
            method="GET",
            path="/p",
            query_string="",
            headers={"Host": HOST},
            body=b"",
            secret_key=SK,
            parsed=good,
        ),
        lambda: verify(
            method="GET",
            path="/p",
            query_string="",
            headers=wire.headers,
            body=b"",
            secret_key=SK,
            parsed=replace(good, signed_headers=("host",)),
        ),
        lambda: parse_sdk_date(SK),
        lambda: check_clock_skew(0, 10**12),
    ]
    for attempt in attempts:
        with pytest.raises(SignatureError) as info:
            attempt()
        message = str(info.value)
        assert SK not in message
        assert good.signature not in message
    assert SK not in repr(HmacAuth(AK, SK, PID))


# ------------------------------------------------------------------------------------------------------------
# Our own clients sign as the server verifies (more in tests/client/test_signing.py)


def test_sign_headers_adds_host_date_and_authorization() -> None:
    now = datetime(2026, 11, 23, 14, 35, 4, tzinfo=UTC)
    out = sign_headers(
        method="post",
        url=f"https://user:pw@{HOST}/v3/{PID}/tracker",
        headers={"Content-Type": JSON_UTF8, "X-Project-Id": PID, "X_Trace": "u"},
        body=TRACKER_BODY.encode(),
        access_key=AK,
        secret_key=SK,
        now=now,
    )
    assert out["Host"] == HOST
    assert out["X-Sdk-Date"] == DATE
    assert out["X_Trace"] == "u"
    parsed = parse_authorization(out["Authorization"])
    assert parsed.signed_headers == ("content-type", "host", "x-project-id", "x-sdk-date")
    wire = Wire("POST", f"/v3/{PID}/tracker", "", out, TRACKER_BODY.encode())
    assert wire.check()
    # a naive datetime is UTC; an aware one is converted
    for moment in (now.replace(tzinfo=None), now.astimezone(timezone(timedelta(hours=8)))):
        out = sign_headers(
            method="GET", url="http://h/", headers={}, body=b"", access_key=AK, secret_key=SK, now=moment
        )
        assert out["X-Sdk-Date"] == DATE
