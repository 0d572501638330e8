"""How many SDK-HMAC-SHA256 verifications one core does per second (floor: 20,000/s).

Every API request pays for one ``parse_authorization`` + ``verify``, so this bounds the request rate of a
single worker before any real work. The requests look like SDK traffic: the SDK's headers, ListTraces
queries with encoded values, JSON bodies of a few hundred bytes for writes. Secret lookup is not included.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from opencts.client.signing import sign_headers
from opencts.iam.signature import parse_authorization, verify

FLOOR_PER_SECOND = 20_000
REQUESTS = 1_000
DURATION_S = 3.0
HOST = "127.0.0.1:8080"
UA = (
    "huaweicloud-usdk-python/3.0; os/Linux##1_SMP_PREEMPT_DYNAMIC_@0#x86_64 python/3.11.7 impl/CPython; "
    "app/579e4eaa-26a0-4d14-b78d-2fad0b0c77fe"
)


@dataclass(frozen=True, slots=True)
class Received:
    """A signed request as the server sees it (lower-case header names, as Starlette/ASGI hand them over)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    secret_key: str


def _build(rng: random.Random, index: int) -> Received:
    project = f"{rng.getrandbits(128):032x}"
    access_key = f"AK{index:018d}"
    secret_key = f"{rng.getrandbits(160):040x}"
    method = rng.choice(["GET", "GET", "GET", "POST", "PUT", "DELETE"])
    query = ""
    body = b""
    content_type = "application/json"
    if method == "GET":
        path = f"/v3/{project}/traces"
        params = {
            "trace_type": "system",
            "limit": str(rng.choice([10, 50, 200])),
            "from": str(1_700_000_000_000 + index),
            "to": str(1_700_003_600_000 + index),
            "service_type": rng.choice(["ECS", "OBS", "IAM"]),
            "resource_name": rng.choice(["vm-01", "My Res/1", "桶 一"]),
        }
        query = "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(params.items()))
    elif method == "DELETE":
        path = f"/v3/{project}/notifications"
        query = "notification_id=n1%2Cn2"
    else:
        path = f"/v3/{project}/tracker"
        content_type = "application/json;charset=utf-8"
        body = json.dumps(
            {
                "tracker_type": "data",
                "tracker_name": f"tracker-{index}",
                "obs_info": {
                    "bucket_name": "audit-bucket",
                    "file_prefix_name": "cts",
                    "is_obs_created": False,
                },
                "data_bucket": {"data_bucket_name": f"bucket-{index}", "data_event": ["READ", "WRITE"]},
                "is_lts_enabled": True,
            }
        ).encode()
    url = f"http://{HOST}{path}" + (f"?{query}" if query else "")
    headers = sign_headers(
        method=method,
        url=url,
        headers={"User-Agent": UA, "Content-Type": content_type, "X-Project-Id": project},
        body=body,
        access_key=access_key,
        secret_key=secret_key,
        now=datetime.now(UTC),
    )
    return Received(method, path, query, {k.lower(): v for k, v in headers.items()}, body, secret_key)


def _verify_all(requests: list[Received]) -> int:
    for request in requests:
        parsed = parse_authorization(request.headers["authorization"])
        if not verify(
            method=request.method,
            path=request.path,
            query_string=request.query,
            headers=request.headers,
            body=request.body,
            secret_key=request.secret_key,
            parsed=parsed,
        ):
            raise AssertionError(f"benchmark request did not verify: {request.method} {request.path}")
    return len(requests)


def main() -> None:
    rng = random.Random(1)
    requests = [_build(rng, i) for i in range(REQUESTS)]
    _verify_all(requests)  # warm-up, and proof that every request is valid

    done = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < DURATION_S:
        done += _verify_all(requests)
        elapsed = time.perf_counter() - start
    rate = done / elapsed
    verdict = "meets" if rate >= FLOOR_PER_SECOND else "BELOW"
    print(
        f"signature: {done:,} verifications of {REQUESTS:,} distinct requests in {elapsed:.2f} s "
        f"on one thread: {rate:,.0f}/s ({1e6 / rate:.1f} µs each); "
        f"{verdict} the {FLOOR_PER_SECOND:,}/s floor"
    )


if __name__ == "__main__":
    main()
