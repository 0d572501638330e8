"""HTTP NDJSON batches, signed as SMN signs its HTTP messages (:mod:`opencts.smn.signing`).

A POST of ``application/x-ndjson``: one record per line, each the trace as stored. The headers say what it
is and carry the signature: the SMN v1 canonical string of these fields, signed with the server's signing
key (SHA256withRSA), whose certificate ``X-OpenCTS-Signing-Cert-Url`` serves::

    message       the SHA-256 (hex) of the body           X-OpenCTS-Body-Sha256
    message_id    the batch id (same on every retry)      X-OpenCTS-Message-Id
    subscription_urn  the sink's URN                      X-OpenCTS-Sink-Urn
    timestamp     when it was signed (ISO 8601, UTC)      X-OpenCTS-Timestamp
    type          ``LtsSinkBatch``                        X-OpenCTS-Message-Type

:func:`verify_batch` is the check a receiver makes (and the tests make). Any 2xx is delivered; anything
else, a timeout or a refused connection is retried with backoff.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import httpx

from opencts.clock import iso_ms, now_ms
from opencts.lts.sinks.batch import Batch, SinkError
from opencts.lts.sinks.model import tls_context
from opencts.smn.signing import Signer, verify_message

MESSAGE_TYPE = "LtsSinkBatch"
CONTENT_TYPE = "application/x-ndjson"


def body(batch: Batch) -> bytes:
    return b"".join(r.content.encode() + b"\n" for r in batch.records)


def signed_headers(batch: Batch, payload: bytes, signer: Signer, cert_url: str) -> dict[str, str]:
    doc: dict[str, Any] = {
        "message": hashlib.sha256(payload).hexdigest(),
        "message_id": batch.batch_id,
        "subscription_urn": batch.sink.urn,
        "timestamp": iso_ms(now_ms()),
        "type": MESSAGE_TYPE,
    }
    signer.sign(doc)
    return {
        "Content-Type": CONTENT_TYPE,
        "X-OpenCTS-Body-Sha256": doc["message"],
        "X-OpenCTS-Message-Id": doc["message_id"],
        "X-OpenCTS-Sink-Urn": doc["subscription_urn"],
        "X-OpenCTS-Timestamp": doc["timestamp"],
        "X-OpenCTS-Message-Type": MESSAGE_TYPE,
        "X-OpenCTS-Signature-Version": doc["signature_version"],
        "X-OpenCTS-Signature": doc["signature"],
        "X-OpenCTS-Signing-Cert-Url": cert_url,
        "X-OpenCTS-Records": str(len(batch.records)),
    }


def verify_batch(headers: Mapping[str, str], payload: bytes, public_key_pem: bytes | str) -> bool:
    """True if ``payload`` with these headers (case-insensitive) is a batch signed by this key."""
    h = {k.lower(): v for k, v in headers.items()}
    if h.get("x-opencts-body-sha256") != hashlib.sha256(payload).hexdigest():
        return False
    doc = {
        "message": h.get("x-opencts-body-sha256"),
        "message_id": h.get("x-opencts-message-id"),
        "subscription_urn": h.get("x-opencts-sink-urn"),
        "timestamp": h.get("x-opencts-timestamp"),
        "type": h.get("x-opencts-message-type"),
        "signature_version": h.get("x-opencts-signature-version"),
        "signature": h.get("x-opencts-signature"),
    }
    return verify_message(doc, public_key_pem)


async def post(client: httpx.AsyncClient, batch: Batch, payload: bytes, headers: dict[str, str]) -> None:
    """POST ``payload`` to the sink's endpoint; a SinkError unless the answer is a 2xx."""
    url = batch.sink.endpoint
    extra = batch.sink.secrets.get("headers") or {}
    try:
        response = await client.post(url, content=payload, headers={**extra, **headers})
    except httpx.HTTPError as exc:
        raise SinkError(f"POST {url}: {type(exc).__name__}: {exc}"[:500]) from None
    if not 200 <= response.status_code < 300:
        raise SinkError(f"POST {url}: HTTP {response.status_code}")


def client_for(batch: Batch, timeout: float) -> httpx.AsyncClient:
    """A client verifying the receiver's certificate (the sink's CA or the system's), never redirected."""
    ctx = tls_context(batch.sink.settings, batch.sink.secrets)
    return httpx.AsyncClient(timeout=timeout, verify=ctx, follow_redirects=False, trust_env=False)


class NdjsonSender:
    """Sends a sink's batches; one client (its connections kept alive) per sink."""

    def __init__(self, signer: Signer, cert_url: str, *, timeout: float) -> None:
        self.signer = signer
        self.cert_url = cert_url
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None

    async def send(self, batch: Batch) -> None:
        if self._client is None:
            self._client = client_for(batch, self.timeout)
        payload = body(batch)
        await post(self._client, batch, payload, signed_headers(batch, payload, self.signer, self.cert_url))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
