"""An S3 server on this machine for tests and benchmarks: moto's, in a thread, on a free port.

moto keeps its buckets in the memory of the process that runs it, shared by every moto server of that
process, so :meth:`S3Server.reset` empties them between tests. :meth:`S3Server.stop` and
:meth:`S3Server.start` again on the same port make an outage a client sees as refused connections, then a
recovery with the same content. moto is a development dependency: it is imported when a server starts.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

from opencts.testing.ports import free_port

#: credentials moto accepts while it does not check IAM (its default)
ACCESS_KEY = "opencts-test"
SECRET_KEY = "opencts-test-secret"


class S3Server:
    """``with S3Server() as s3: s3.url`` is the endpoint (``http://127.0.0.1:PORT``)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: Any = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def reset(self) -> None:
        """Forget every bucket and IAM user, and stop checking credentials (moto's own reset call)."""
        httpx.post(f"{self.url}/moto-api/reset", timeout=30).raise_for_status()
        self.set_auth(enforced=False)

    def set_auth(self, *, enforced: bool) -> None:
        """Check every request's signature and IAM policy (``enforced``), or accept any credentials."""
        value = "0" if enforced else "inf"
        if enforced:
            accept_date_signed_requests()
        httpx.post(f"{self.url}/moto-api/reset-auth", content=value, timeout=30).raise_for_status()

    def __enter__(self) -> S3Server:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def accept_date_signed_requests() -> None:
    """Let moto's signature check take SigV4 requests as S3 (and MinIO) do, for the OBS SDK's sake.

    Two gaps, both where the OBS SDK (``esdk-obs-python``) follows SigV4 and moto does not:

    - SigV4 takes the request time from ``X-Amz-Date`` or ``Date``; the OBS SDK signs with ``Date``, and
      moto reads only ``X-Amz-Date`` (a 500);
    - the canonical query string is the query decoded and encoded again (``/`` as ``%2F``); the OBS SDK
      sends ``response-content-type=application/zip`` as is, and moto signs the raw query (a 403).

    The signature is still computed from the secret key and compared, so a wrong key is refused as before.
    Idempotent; changes moto in this process only.
    """
    import email.utils
    from urllib.parse import quote, unquote

    from botocore.awsrequest import AWSRequest
    from moto.iam.access_control import IAMRequestBase

    if getattr(IAMRequestBase, "_opencts_sigv4_as_s3", False):
        return

    def encoded(part: str) -> str:
        return quote(unquote(part), safe="-_.~")

    def create_aws_request(self: Any) -> AWSRequest:
        signed = self._get_string_between("SignedHeaders=", ",", self._headers["Authorization"]).split(";")
        headers = self._create_headers_for_aws_request(signed, self._headers)
        path, _, query = str(self._path).partition("?")
        if query:
            pairs = (pair.partition("=") for pair in query.split("&"))
            path += "?" + "&".join(f"{encoded(key)}={encoded(value)}" for key, _, value in pairs)
        request = AWSRequest(method=self._method, url=path, data=self._body or self._data, headers=headers)
        stamp = headers.get("X-Amz-Date")
        if stamp is None:
            stamp = email.utils.parsedate_to_datetime(headers["Date"]).strftime("%Y%m%dT%H%M%SZ")
        request.context["timestamp"] = stamp
        return request

    IAMRequestBase._create_aws_request = create_aws_request  # type: ignore[method-assign]
    IAMRequestBase._opencts_sigv4_as_s3 = True  # type: ignore[attr-defined]


def s3_client(url: str) -> Any:
    """A plain boto3 S3 client of moto's credentials at ``url``: what a user (or a tamperer) with the
    bucket's keys holds, apart from OpenCTS's own store."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
