"""Our own clients' signing (``opencts.client.signing``), checked by the server's verification.

The SDK cross-checks and the spec's vectors are in ``tests/iam/test_signature.py``; here a stand-in server
verifies each request exactly as received, as the real one does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import pytest
from starlette.datastructures import Headers

from opencts.client.signing import HmacAuth, sign_headers
from opencts.iam.signature import (
    ALGORITHM,
    canonical_query,
    check_clock_skew,
    parse_authorization,
    parse_sdk_date,
    verify,
)

AK = "HPUAEXAMPLEACCESSKEY"
SK = "Zr9sK2m1TopSecretSecretKeyValue0123456789"
PID = "0123456789abcdef0123456789abcdef"
HOST = "127.0.0.1:8080"
URN = f"urn:smn:cn-north-4:{PID}:cts_topic"


def test_sign_headers_rejects_duplicate_names_and_replaces_authorization() -> None:
    with pytest.raises(ValueError, match="given twice"):
        sign_headers(
            method="GET",
            url="http://h/",
            headers={"A": "1", "a": "2"},
            body=b"",
            access_key=AK,
            secret_key=SK,
        )
    out = sign_headers(
        method="GET",
        url="http://h/",
        headers={"authorization": "Basic x"},
        body=b"",
        access_key=AK,
        secret_key=SK,
    )
    assert "authorization" not in out
    assert out["Authorization"].startswith(f"{ALGORITHM} Access={AK}, SignedHeaders=host;x-sdk-date, ")


def _verifying_transport(seen: list[httpx.Request]) -> httpx.MockTransport:
    """A stand-in server: checks each request exactly as received, answers 200 or 401."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        raw_path, _, query = request.url.raw_path.decode("ascii").partition("?")
        headers = Headers(raw=[(k.lower(), v) for k, v in request.headers.raw])
        parsed = parse_authorization(headers["authorization"])
        ok = verify(
            method=request.method,
            path=raw_path,
            query_string=query,
            headers=headers,
            body=request.content,
            secret_key=SK,
            parsed=parsed,
        )
        check_clock_skew(parse_sdk_date(headers["x-sdk-date"]), int(datetime.now(UTC).timestamp() * 1000))
        return httpx.Response(200 if ok else 401)

    return httpx.MockTransport(handler)


def test_hmac_auth_requests_verify() -> None:
    seen: list[httpx.Request] = []
    with httpx.Client(
        base_url=f"http://{HOST}", auth=HmacAuth(AK, SK, PID), transport=_verifying_transport(seen)
    ) as client:
        responses = [
            client.get(
                f"/v3/{PID}/traces",
                params={
                    "trace_type": "system",
                    "resource_name": "My Res/1",
                    "limit": 10,
                    "user": "名字 *",
                    "x": "",
                },
            ),
            client.get(f"/v3/{PID}/traces", params=[("b", "2"), ("a", "2"), ("a", "1"), ("a", "+")]),
            client.post(f"/v3/{PID}/tracker", json={"tracker_type": "system", "tracker_name": "système"}),
            client.request("DELETE", f"/v3/{PID}/cts-tracker/t1/tags/delete", json={"tags": [{"key": "k"}]}),
            client.delete(f"/v3/{PID}/notifications", params={"notification_id": "n1,n2"}),
            client.get(f"/v2/{PID}/notifications/topics/{quote(URN, safe='')}/subscriptions"),
            client.get(f"/v3/{PID}/trackers", headers=[(b"X-Client-Name", "José".encode())]),
        ]
    assert [r.status_code for r in responses] == [200] * len(responses)

    first = seen[0]
    assert (
        first.url.query
        == b"limit=10&resource_name=My%20Res%2F1&trace_type=system&user=%E5%90%8D%E5%AD%97%20%2A&x="
    )
    assert seen[1].url.query == b"a=%2B&a=1&a=2&b=2"
    for request in seen:
        query = request.url.query.decode()
        assert canonical_query(query) == query  # what was signed is what went on the wire
        parsed = parse_authorization(request.headers["authorization"])
        assert parsed.access_key == AK
        assert {"host", "x-sdk-date", "x-project-id", "user-agent"} <= set(parsed.signed_headers)
        assert not {"accept", "accept-encoding", "connection", "content-length"} & set(parsed.signed_headers)
        assert request.headers["x-project-id"] == PID
    assert "content-type" in parse_authorization(seen[2].headers["authorization"]).signed_headers


def test_hmac_auth_with_wrong_secret_is_refused_and_project_optional() -> None:
    seen: list[httpx.Request] = []
    transport = _verifying_transport(seen)
    with httpx.Client(
        base_url=f"http://{HOST}", auth=HmacAuth(AK, SK + "x", PID), transport=transport
    ) as client:
        assert client.get("/v3/projects", params={"name": "cn-north-4"}).status_code == 401
    with httpx.Client(base_url=f"http://{HOST}", auth=HmacAuth(AK, SK), transport=transport) as client:
        assert client.get("/v3/projects", params={"name": "cn-north-4"}).status_code == 200
    assert "x-project-id" not in seen[-1].headers


def test_nonce_makes_identical_requests_sign_differently() -> None:
    auth = HmacAuth("AK", "SK", project_id="p", nonce=True)
    signatures = set()
    for _ in range(2):
        request = httpx.Request("DELETE", "http://127.0.0.1:8080/v3/p/trackers?tracker_name=t")
        signed = next(auth.auth_flow(request))
        assert signed.headers["X-Request-Nonce"]
        signatures.add(parse_authorization(signed.headers["Authorization"]).signature)
    assert len(signatures) == 2
